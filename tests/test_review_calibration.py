"""`grader calibrate --from-reviews`: a mapping fitted on stored reviews (Mohler answers, their human grades as reviews)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from eval.datasets import load_mohler
from grader.calibrate import load_calibration
from grader.cli import app
from grader.draft import draft_rubric
from grader.grade import Grader
from grader.review import ReviewInput
from grader.settings import get_settings
from grader.store import Store

runner = CliRunner()
QUESTIONS = ["1.1", "1.2", "2.1"]


@pytest.fixture
def reviewed_store(shared_data, grader, tmp_path, monkeypatch) -> Store:
    """Three Mohler questions graded by the real model and stored, each answer reviewed with its human score."""
    url = f"sqlite:///{tmp_path / 'grader.db'}"
    monkeypatch.setenv("GRADER_DATABASE_URL", url)
    get_settings.cache_clear()
    frame = load_mohler(shared_data / "mohler" / "mohler.csv")
    frame = frame[frame["group"].isin(QUESTIONS)]
    store = Store(url)
    for group, rows in frame.groupby("group"):
        rubric = draft_rubric(rows["question"].iloc[0], rows["reference"].iloc[0], f"mohler-{group.replace('.', '-')}", 5)
        results = grader.grade_many([(rubric, a) for a in rows["answer"]])
        ids = store.save_results(list(rows["answer"]), results)
        for rid, human in zip(ids, rows["human"]):
            store.add_review(rid, ReviewInput(score=human), "mohler-graders")
    yield store
    get_settings.cache_clear()


def test_calibration_from_reviews_is_cross_validated_versioned_and_gradable(reviewed_store, tmp_path, settings, rubrics):
    out = tmp_path / "reviews.json"
    fitted = runner.invoke(app, ["calibrate", "--from-reviews", "--out", str(out)])
    assert fitted.exit_code == 0, fitted.output
    assert "held out by rubric (3 folds)" in fitted.output
    assert "before (stored scores)" in fitted.output and "after (this mapping)" in fitted.output
    calibration = load_calibration(out)
    assert calibration.name == "reviews-all@v1" and calibration.notes["rows"] > 60
    assert calibration.notes["after"]["count"] == calibration.notes["before"]["count"] == calibration.notes["rows"]
    assert runner.invoke(app, ["calibrate", "--from-reviews", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["version"] == 2  # fitted again: the next version
    # The grader applies it and names it in every fingerprint; the guards still zero an off-topic answer.
    calibrated = Grader(settings.model_copy(update={"calibration_path": out}))
    rubric = rubrics["batch-normalization"]
    assert calibrated.grade(rubric, "It normalizes activations with batch statistics.").fingerprint.calibration == "reviews-all@v2"
    assert calibrated.grade(rubric, "I like turtles and the colour green.").score == 0


def test_one_rubric_is_cross_validated_by_answer_and_too_few_reviews_are_refused(reviewed_store, tmp_path, monkeypatch):
    one_rubric = ["calibrate", "--from-reviews", "--rubric", "mohler-1-1", "--out", str(tmp_path / "one.json")]
    refused = runner.invoke(app, one_rubric)  # Mohler 1.1 has 29 answers; the default minimum is 30
    assert refused.exit_code == 2 and not (tmp_path / "one.json").exists()
    assert "rubric 'mohler-1-1' has 29 reviewed result(s)" in refused.output and "at least 30" in refused.output
    monkeypatch.setenv("GRADER_MIN_REVIEWS_TO_CALIBRATE", "20")
    get_settings.cache_clear()
    fitted = runner.invoke(app, one_rubric)
    assert fitted.exit_code == 0, fitted.output
    assert "held out by answer within the rubric (5 folds)" in fitted.output
    assert load_calibration(tmp_path / "one.json").name == "reviews-mohler-1-1@v1"
