"""Properties of the default score that must hold for any rubric and answer (hypothesis, the real model).

Answers are built from the shipped rubrics' own key points, so which points an answer states is
known: filler appended to it, one of its points negated, or its key terms as a bare list.
"""

import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from grader.rubric import Rubric
from grader.segment import segment_answer

FILLER = [
    "This is a question that comes up a lot in interviews.",
    "I hope that this explanation makes sense to the reader.",
    "My grandmother's apple pie needs cinnamon and a buttery crust.",
    "There are many things one could say about this in general.",
    "I read about it in a blog post a few years ago and found it interesting.",
    "The weather was lovely last weekend, so we went hiking in the hills.",
]
# Derandomized: the same drawn examples on every run, so CI does not depend on the seed. A random seed once found
# relu-vs-sigmoid's "sparse-activations" negated costing 0.06 instead of its share: "It is not true that A, so B"
# was split at ", so", leaving B undenied. Fixed in the segmenter; every such point is now checked below as well.
RUNS = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def answered_rubric(draw, rubrics) -> tuple[Rubric, list[int]]:
    """A shipped rubric and the key points (at least one) a correct answer to it states."""
    rubric = rubrics[draw(st.sampled_from(sorted(rubrics)))]
    k = len(rubric.key_points)
    stated = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True))
    return rubric, sorted(stated)


def _answer(rubric: Rubric, stated: list[int]) -> str:
    return " ".join(rubric.key_points[i].text for i in stated)


def _share(rubric: Rubric, i: int) -> float:
    return rubric.key_points[i].weight / sum(kp.weight for kp in rubric.key_points)


@pytest.fixture(scope="module")
def shipped(rubrics):
    return {rid: r for rid, r in rubrics.items() if r.scoring.mode == "weighted"}


def test_appending_filler_never_raises_a_score(grader, shipped):
    @RUNS
    @given(data=st.data())
    def check(data):
        rubric, stated = data.draw(answered_rubric(shipped))
        filler = data.draw(st.lists(st.sampled_from(FILLER), min_size=1, max_size=3, unique=True))
        answer = _answer(rubric, stated)
        plain, padded = grader.grade_many([(rubric, answer), (rubric, answer + " " + " ".join(filler))])
        assert padded.score <= plain.score + 1e-3, (rubric.id, stated, filler, plain.score, padded.score)

    check()


def test_negating_a_stated_point_costs_at_least_its_share(grader, shipped):
    @RUNS
    @given(data=st.data())
    def check(data):
        rubric, stated = data.draw(answered_rubric(shipped))
        # A point stated in one clause: "It is not true that X, so Y" denies X and still states Y.
        single = [i for i in stated if len(segment_answer(rubric.key_points[i].text)) == 1]
        assume(single)
        target = data.draw(st.sampled_from(single))
        sentences = [rubric.key_points[i].text for i in stated]
        text = rubric.key_points[target].text
        sentences[stated.index(target)] = "It is not true that " + text[0].lower() + text[1:]
        correct, negated = grader.grade_many([(rubric, _answer(rubric, stated)), (rubric, " ".join(sentences))])
        drop = correct.score - negated.score
        assert drop >= _share(rubric, target) * rubric.max_score - 1e-3 or negated.score == 0, (
            rubric.id, rubric.key_points[target].id, correct.score, negated.score,
        )

    check()


@pytest.mark.parametrize("cue", ["It is not true that ", "It is false that ", "It is a myth that "])
def test_negating_any_one_clause_point_of_a_full_answer_costs_its_share(grader, shipped, cue):
    """Every one-clause key point of every shipped rubric, denied in an answer that states all the others."""
    cases = [(r, i) for r in shipped.values() for i, kp in enumerate(r.key_points) if len(segment_answer(kp.text)) == 1]
    full = {r.id: _answer(r, list(range(len(r.key_points)))) for r in shipped.values()}
    denied = [
        " ".join(cue + kp.text[0].lower() + kp.text[1:] if j == i else kp.text for j, kp in enumerate(r.key_points))
        for r, i in cases
    ]
    results = grader.grade_many([(r, full[r.id]) for r, _ in cases] + [(r, t) for (r, _), t in zip(cases, denied)])
    correct, negated = results[: len(cases)], results[len(cases) :]
    failing = [
        (r.id, r.key_points[i].id, c.score, n.score)
        for (r, i), c, n in zip(cases, correct, negated)
        if c.score - n.score < _share(r, i) * r.max_score - 1e-3 and n.score > 0
    ]
    assert len(cases) >= 40 and not failing


def _terms(text: str) -> list[str]:
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z-]+", text) if w.lower() not in ENGLISH_STOP_WORDS]
    return sorted(set(words), key=len, reverse=True)[:2]


def test_a_keyword_list_of_the_key_terms_stays_at_or_below_partial(grader, shipped):
    @RUNS
    @given(data=st.data())
    def check(data):
        rubric, stated = data.draw(answered_rubric(shipped))
        terms = [t for i in stated for t in _terms(rubric.key_points[i].text)]
        if len(terms) < 3:
            terms += [t for kp in rubric.key_points for t in _terms(kp.text)][: 3 - len(terms)]
        result = grader.grade(rubric, ", ".join(terms))
        assert result.score <= 0.5 * rubric.max_score + 1e-3, (rubric.id, terms, result.score)

    check()
