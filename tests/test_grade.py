"""The grading path with the real model: coverage, missing points, evidence, fingerprint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.draft import draft_rubric
from grader.errors import AnswerError, AnswerTooLarge
from grader.grade import Grader
from grader.segment import segment_answer

COMPLETE = (
    "A max pool layer moves a little 2 by 2 window across every feature map and only keeps the biggest number "
    "in it. Because of that the maps get half as tall and half as wide, so the next layers need far less compute "
    "and memory. There is nothing to learn in it, no weights at all, which also helps a bit against overfitting. "
    "If a feature moves by a pixel or two inside the window the max stays the same, so it tolerates small shifts. "
    "You basically keep the strongest response, i.e. whether the pattern showed up somewhere in that patch. "
    "Deeper layers then see a bigger region of the input picture, their receptive field grows. "
    "Nowadays people sometimes use strided convolutions or average pooling for the downsampling instead."
)
ONE_POINT = "It makes the feature maps smaller in height and width so the following layers are cheaper to compute."
OFF_TOPIC = "My grandmother's apple pie needs cinnamon, brown sugar and a buttery crust baked for forty minutes."


def test_complete_answer_in_our_own_words_covers_the_rubric(grader, rubrics):
    result = grader.grade(rubrics["max-pooling"], COMPLETE)
    assert result.coverage >= 0.8, [(v.id, v.status, v.similarity) for v in result.key_points]
    assert result.score >= 0.8 * 5 and result.fingerprint.calibration == "evidence@v1"
    linear = Grader(grader.settings.model_copy(update={"score_mapping": "linear"}), encoder=grader.encoder)
    plain = linear.grade(rubrics["max-pooling"], COMPLETE)
    assert plain.score == pytest.approx(plain.coverage * 5, abs=1e-3) and plain.fingerprint.calibration == "linear"
    assert [v.status for v in plain.key_points] == [v.status for v in result.key_points]
    for verdict in result.key_points:
        if verdict.status != "missing":
            ev = verdict.evidence
            assert COMPLETE[ev.start : ev.end] == ev.text and ev.similarity == pytest.approx(verdict.similarity)


def test_one_point_answer_lists_exactly_the_other_key_points_as_missing(grader, rubrics):
    rubric = rubrics["max-pooling"]
    result = grader.grade(rubric, ONE_POINT)
    assert result.missing == [kp.id for kp in rubric.key_points if kp.id != "downsample"]
    assert [v.status for v in result.key_points if v.id == "downsample"] == ["covered"]


def test_off_topic_answer_gets_low_coverage_and_a_reason(grader, rubrics):
    result = grader.grade(rubrics["max-pooling"], OFF_TOPIC)
    assert result.coverage <= 0.2 and result.score == 0
    assert "off_topic" in result.flags and result.reasons


def test_a_non_answer_scores_zero_and_says_so(grader, rubrics):
    for text in ("No response.", "not answered", "I don't know"):
        result = grader.grade(rubrics["max-pooling"], text)
        assert result.score == 0 and result.flags == ["no_answer"], (text, result.flags)
        assert result.reasons == ["the answer says it gives no answer"] and not result.needs_review


def test_a_few_words_far_from_every_point_go_to_review_not_to_off_topic(grader, rubrics):
    # Three words are too few for a sentence vector to judge ("logn" is a right answer to a search
    # question); they are graded on their key points like any answer, and flagged for a human.
    result = grader.grade(rubrics["max-pooling"], "bake sourdough bread")
    assert "off_topic" not in result.flags and "short_answer" in result.flags and result.needs_review
    longer = grader.grade(rubrics["max-pooling"], "To bake sourdough bread you refresh the starter overnight.")
    assert "off_topic" in longer.flags and "short_answer" not in longer.flags and longer.score == 0


def test_all_clauses_of_many_answers_are_encoded_in_one_call(grader, rubrics):
    grader.grade(rubrics["max-pooling"], "warm-up so the rubric is cached")
    before = grader.encoder.calls
    results = grader.grade_many([(rubrics["max-pooling"], COMPLETE), (rubrics["pca"], ONE_POINT)])
    assert grader.encoder.calls == before + 1  # sentence vectors and word tokens from one forward pass
    assert len(segment_answer(COMPLETE)) > 5 and all(not isinstance(r, Exception) for r in results)


def test_fingerprint_names_model_rubric_and_thresholds(grader, rubrics):
    rubric = rubrics["max-pooling"]
    fp = grader.grade(rubric, ONE_POINT).fingerprint
    assert fp.model == "all-MiniLM-L6-v2" and len(fp.model_hash) == 16
    assert (fp.rubric_id, fp.rubric_version, fp.rubric_hash) == (rubric.id, rubric.version, rubric.content_hash)
    assert fp.thresholds["covered_threshold"] == grader.settings.thresholds.covered_threshold


@pytest.mark.parametrize("span_vectors", ["separate", "pooled"])
@pytest.mark.parametrize("order", ["alone-first", "batch-first"])
def test_a_grade_does_not_depend_on_batch_mates_or_on_what_is_cached(order, span_vectors):
    # "One answer, one score": the score at its printed precision, every key point's status, the flags and
    # the missing points are the same whether an answer is graded alone or among 31 others, first in a
    # fresh process (nothing cached: its rubric is encoded in the same call) or after its rubric is cached.
    probe = Path(__file__).with_name("batch_invariance_probe.py")
    env = {**os.environ, "GRADER_SPAN_VECTORS": span_vectors}
    run = subprocess.run([sys.executable, str(probe), order], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert len(out["alone"]) == 32
    for i, (alone, together) in enumerate(zip(out["alone"], out["together"])):
        assert alone == together, (i, alone, together)


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ("", AnswerError, "answer is empty"),
        ("  \n\t ", AnswerError, "answer is empty"),
        (b"caf\xe9 au lait", AnswerError, "not valid UTF-8 (bad byte at offset 3)"),
        ("x" * 20_001, AnswerTooLarge, "the limit is 20000"),
    ],
)
def test_bad_answers_are_rejected_with_a_clear_message(grader, rubrics, answer, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        grader.grade(rubrics["max-pooling"], answer)
    # in a batch the bad answer comes back in place and the others are still graded
    good, bad = grader.grade_many([(rubrics["max-pooling"], ONE_POINT), (rubrics["max-pooling"], answer)])
    assert isinstance(bad, error) and good.score > 0


def test_windows_never_join_clauses_that_a_dropped_repeat_kept_apart():
    from grader.match import answer_spans
    from grader.segment import distinct_clauses

    answer = (
        "Pooling keeps the maximum value. It has no weights at all. Pooling keeps the maximum value. It shrinks maps."
    )
    clauses = distinct_clauses(segment_answer(answer))
    assert [c.after_repeat for c in clauses] == [False, False, True]
    windows = {(s.first, s.last) for s in answer_spans(clauses) if s.last > s.first}
    assert windows == {(0, 1)}  # (1, 2) and (0, 2) would join clauses the answer never put side by side


def test_naming_the_topic_states_no_listed_contradiction(grader, rubrics):
    result = grader.grade(rubrics["batch-normalization"], "Batch norm.")
    assert "contradiction" not in result.flags
    assert all(v.status != "contradicted" for v in result.key_points)


def test_the_point_said_in_the_contradictions_own_words_is_not_a_contradiction(grader, rubrics):
    # "takes" is a word of the listed contradiction ("takes the average") that the long key point lacks; a word that
    # common only frames the claim, so the correct short answer is credited and the wrong one still denied.
    rubric = rubrics["max-pooling"]
    right = grader.grade(rubric, "Max pooling takes the largest value in each window.")
    wrong = grader.grade(rubric, "Max pooling averages the values in each window.")
    assert {v.id: v.status for v in right.key_points}["takes-max"] == "covered" and "contradiction" not in right.flags
    assert {v.id: v.status for v in wrong.key_points}["takes-max"] == "contradicted"


def test_stating_a_listed_contradiction_costs_the_key_points_weight(grader, rubrics):
    rubric = rubrics["imbalanced-data"]
    answer = "I would oversample the whole data set first and then split it into training and test sets."
    result = grader.grade(rubric, answer)
    verdict = {v.id: v for v in result.key_points}["split-before-resampling"]
    assert verdict.status == "contradicted" and verdict.credit == -1.0 and verdict.contradiction
    weights = {kp.id: kp.weight for kp in rubric.key_points}
    earned = sum(weights[v.id] * v.credit for v in result.key_points) / sum(weights.values())
    assert result.coverage == pytest.approx(max(0.0, earned), abs=1e-3) and result.coverage >= 0


def test_swapped_roles_and_a_hard_wrapped_denial_earn_nothing_for_the_point(grader, rubrics):
    # The L1 point's claim said of L2, and "never ... exactly zero" wrapped across two lines: neither states L1's
    # sparsity; the same answer with the roles right and written on one line does.
    rubric = rubrics["regularization"]
    right, swapped = grader.grade_many([
        (rubric, "You add a penalty on the weights to the loss. L1 is the one that zeroes out features, "
                 "and L2 shrinks all the weights smoothly."),
        (rubric, "You add a penalty on the weights to the loss. L1 shrinks weights but never makes them\n"
                 "exactly zero, and L2 is the one that zeroes out features."),
    ])
    status = {r: {v.id: v.status for v in res.key_points} for r, res in (("right", right), ("swapped", swapped))}
    assert status["right"]["l1-sparsity"] in ("covered", "partial")
    assert status["swapped"]["l1-sparsity"] in ("missing", "contradicted")
    assert swapped.score < right.score


def test_a_point_made_in_the_keys_own_words_earns_partial_credit_unless_denied(grader):
    # MiniLM leaves "Arrays are passed by reference." below the partial threshold for the key "by reference."
    # (Mohler; human grade 5 of 5); the words it shares with the key beyond the question's make it partial.
    rubric = draft_rubric("How are arrays passed to functions?", "by reference.", "arrays-passed")
    made, denied = grader.grade_many(
        [(rubric, "Arrays are passed by reference."), (rubric, "Arrays are never passed by reference.")]
    )
    assert [v.status for v in made.key_points] == ["partial"] and made.score > 0
    assert denied.score == 0 and denied.key_points[0].status in ("missing", "contradicted")


def test_restating_the_question_while_answering_it_is_not_restating_only(grader):
    rubric = draft_rubric("What does the sizeof operator return?", "The size in bytes of its operand.", "sizeof")
    result = grader.grade(rubric, "The sizeof operator returns the size of the operand.")
    assert "question_restated_only" not in result.flags and result.score > 0
    echo = grader.grade(rubric, "What does the sizeof operator return? The sizeof operator returns something.")
    assert echo.score == 0


def test_alignment_measures_which_key_point_words_the_answer_expresses(grader, rubrics):
    rubric = rubrics["max-pooling"]
    results = grader.grade_many([(rubric, COMPLETE), (rubric, ONE_POINT), (rubric, OFF_TOPIC)])
    complete, one, off = ({v.id: v.alignment for v in r.key_points} for r in results)
    alignment = {"complete": complete, "one": one, "off": off}
    assert all(0.0 <= a <= 1.0 for r in alignment.values() for a in r.values())
    # The point an answer makes is aligned better than the points it leaves out, and better than in an
    # answer about something else.
    assert one["downsample"] > max(a for k, a in one.items() if k != "downsample"), alignment
    assert one["downsample"] > off["downsample"] + 0.2, alignment
    assert sum(complete.values()) > sum(one.values()) > sum(off.values()), alignment


def test_alignment_ignores_the_question_restated(grader, rubrics):
    rubric = rubrics["max-pooling"]
    plain = grader.grade(rubric, ONE_POINT)
    restated = grader.grade(rubric, f"{rubric.question} {ONE_POINT}")
    assert "question_restated" in restated.flags
    assert [v.alignment for v in restated.key_points] == pytest.approx([v.alignment for v in plain.key_points], abs=0.02)


def test_an_answer_longer_than_the_model_limit_is_graded_on_every_clause(grader, settings, rubrics):
    # Past 256 word pieces a pooled answer is read in several packed passes: a point made only at the end counts.
    filler = "Pooling layers appear in most convolutional networks used for image classification today. " * 30
    answer = filler + "Max pooling has no parameters, so there is nothing to learn."
    assert len(grader.encoder._pieces.encode(answer).ids) > 256
    result = grader.grade(rubrics["max-pooling"], answer)
    verdict = next(v for v in result.key_points if v.id == "no-parameters")
    assert verdict.status != "missing" and verdict.evidence.start >= len(filler) - 1


def test_span_vectors_setting_is_named_in_the_fingerprint(grader, settings, rubrics):
    separate = Grader(settings.model_copy(update={"span_vectors": "separate"}), encoder=grader.encoder)
    rubric = rubrics["max-pooling"]
    assert grader.fingerprint(rubric).span_vectors == "pooled" == settings.span_vectors
    assert separate.fingerprint(rubric).span_vectors == "separate"
    grader.grade(rubric, ONE_POINT)  # the rubric's vectors cached
    before = grader.encoder.calls
    one = grader.grade(rubric, "Max pooling has no parameters, so there is nothing to learn. " + ONE_POINT)
    assert grader.encoder.calls == before + 1  # the answer read once, in one call
    assert [v.status for v in grader.grade(rubric, ONE_POINT).key_points] == [
        v.status for v in separate.grade(rubric, ONE_POINT).key_points
    ]
    assert one.fingerprint.span_vectors == "pooled"
