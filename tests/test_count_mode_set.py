"""The count-mode test set: every file parses, every rubric validates in count mode, every answer is graded."""

from pathlib import Path

import yaml

from eval.datasets import count_mode_rubrics, load_count_mode, load_dataset
from grader.rubric import load_rubric
from grader.settings import PROJECT_ROOT

COUNT_MODE = PROJECT_ROOT / "eval" / "data" / "count_mode"


def test_every_rubric_validates_and_scores_by_count():
    paths = sorted((COUNT_MODE / "rubrics").glob("*.yaml"))
    assert len(paths) >= 8
    for path in paths:
        rubric = load_rubric(path)
        assert rubric.scoring.mode == "count", path
        assert 5 <= len(rubric.key_points) <= 7, path
        # More candidates than the question asks for ("name any three of ..."), and the top band is full marks.
        assert max(rubric.scoring.bands) < len(rubric.key_points), path
        assert rubric.scoring.bands[max(rubric.scoring.bands)] == rubric.max_score, path


def test_every_example_file_parses_and_fits_its_rubric():
    rubrics = count_mode_rubrics(COUNT_MODE)
    files = sorted(COUNT_MODE.glob("*.yaml"))
    assert {Path(f).stem for f in files} == set(rubrics)
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        rubric = rubrics[data["rubric_id"]]
        ids = {kp.id for kp in rubric.key_points}
        assert 8 <= len(data["examples"]) <= 12, file
        for ex in data["examples"]:
            assert set(ex["covers"]) <= ids, (file, ex["id"])
            assert 0 <= ex["expected_score"] <= rubric.max_score, (file, ex["id"])
            reached = [n for n in rubric.scoring.bands if n <= len(ex["covers"])]
            band = rubric.scoring.bands[max(reached)] if reached else 0.0
            # The expected score is the band of the points covered, except a bare keyword list (at most partial).
            assert ex["expected_score"] == band or ex["kind"] == "keyword_list", (file, ex["id"])


def test_the_set_spans_the_score_range_and_loads_as_a_data_set():
    frame = load_count_mode(COUNT_MODE)
    assert frame.equals(load_dataset(COUNT_MODE))
    assert frame["max_score"].notna().all() and len(frame) >= 80
    assert {"complete", "partial", "topic_only", "misconception", "keyword_list", "wrong"} <= set(frame["kind"])
    assert (frame.loc[frame["kind"] == "topic_only", "human"] == 0).all()
    share = frame["human"] / frame["max_score"]
    assert share.min() == 0 and share.max() == 1 and share.between(0.2, 0.8).sum() >= 20


def test_count_mode_default_beats_a_cross_validated_cosine_threshold(grader):
    from eval.count_mode import kappa, measure

    r = measure(grader.encoder)
    assert kappa(r.human, r.ours) > kappa(r.human, r.cosine), (kappa(r.human, r.ours), kappa(r.human, r.cosine))
    assert r.zero_but_full(r.ours) == 0  # an answer that only talks about the topic never gets full marks
