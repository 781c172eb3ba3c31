"""Our graded example answers for the 23 shipped rubrics, graded by the real model.

The bars are set where the grader honestly is; raise them as it improves.
"""

from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from scipy.stats import spearmanr

from grader.settings import PROJECT_ROOT

EXAMPLES_DIR = PROJECT_ROOT / "eval" / "data" / "ml_interview"
KINDS = {"complete", "partial", "wrong", "misconception", "keyword_list", "off_topic"}


def load_examples() -> list[tuple[str, dict]]:
    rows = []
    for path in sorted(Path(EXAMPLES_DIR).glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rows += [(data["rubric_id"], example) for example in data["examples"]]
    return rows


@pytest.fixture(scope="module")
def graded(grader, rubrics):
    rows = load_examples()
    results = grader.grade_many([(rubrics[rid], ex["answer"]) for rid, ex in rows])
    return [(rid, ex, res) for (rid, ex), res in zip(rows, results)]


def test_every_rubric_has_at_least_eight_examples_of_every_kind(rubrics):
    by_rubric = defaultdict(list)
    for rid, ex in load_examples():
        assert set(ex["covers"]) <= {kp.id for kp in rubrics[rid].key_points}, ex["id"]
        by_rubric[rid].append(ex["kind"])
    assert set(by_rubric) == set(rubrics)
    for rid, kinds in by_rubric.items():
        assert len(kinds) >= 8 and set(kinds) == KINDS, rid


def test_grader_agrees_with_our_expected_scores(graded):
    expected = [ex["expected_score"] for _, ex, _ in graded]
    scores = [res.score for _, _, res in graded]
    assert spearmanr(expected, scores).statistic >= 0.84  # 0.866 measured (eval/REPORT.md)


def test_misconceptions_and_wrong_answers_score_low_on_average(graded):
    # Expected means 0.70 and 0.50 of 5; measured 1.17 and 0.89 (eval/experiments.md). Stating a listed
    # contradiction costs the key point's weight; other wrong claims are only as low as their similarity.
    for kind, bound in (("misconception", 1.5), ("wrong", 1.2)):
        scores = [res.score for _, ex, res in graded if ex["kind"] == kind]
        assert sum(scores) / len(scores) <= bound, (kind, sum(scores) / len(scores))


def test_complete_beats_partial_beats_off_topic_for_every_question(graded):
    mean = defaultdict(lambda: defaultdict(list))
    for rid, ex, res in graded:
        mean[rid][ex["kind"]].append(res.score)
    for rid, kinds in mean.items():
        avg = {k: sum(v) / len(v) for k, v in kinds.items()}
        assert avg["complete"] > avg["partial"] > avg["off_topic"], (rid, avg)


def test_off_topic_examples_score_near_zero_and_keyword_lists_stay_low(graded):
    off_topic = [res.score for _, ex, res in graded if ex["kind"] == "off_topic"]
    # One off-topic example talks about SVM kernels to a question on convolution kernels: partial at worst.
    assert max(off_topic) <= 1.0 and sum(off_topic) / len(off_topic) <= 0.2
    for _, ex, res in graded:
        if ex["kind"] == "keyword_list":
            assert res.score <= 1.5, (ex["id"], res.score)
