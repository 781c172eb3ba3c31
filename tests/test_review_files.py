"""`grader review export / import / pick` through the real Typer entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from grader.cli import app
from grader.result import GradeResult
from grader.review import ReviewInput
from grader.review_files import EXPORT_COLUMNS, read_review_file
from grader.settings import get_settings
from grader.store import Store

runner = CliRunner()
RUBRIC = "batch-normalization"
ANSWERS = [
    "Batch normalization normalizes activations with the mini-batch mean and variance, then scales and shifts them.",
    "It normalizes the activations with the batch mean and variance.",
    "It makes training faster.",
    "Batch normalization is a kind of dropout.",
    "Normalization, batches, training, speed.",
    "I like turtles.",
]


@pytest.fixture(scope="module")
def graded(grader, rubrics) -> list[GradeResult]:
    """The answers graded once by the real model, all needing review (each test stores them afresh)."""
    return [r.model_copy(update={"needs_review": True}) for r in grader.grade_many([(rubrics[RUBRIC], a) for a in ANSWERS])]


@pytest.fixture
def store(store_url: str, graded, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The CLI's store (GRADER_DATABASE_URL) holding the graded answers."""
    monkeypatch.setenv("GRADER_DATABASE_URL", store_url)
    get_settings.cache_clear()
    store = Store(store_url)
    store.save_results(ANSWERS, graded)
    yield store
    get_settings.cache_clear()


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_export_edit_import_round_trips_every_row(store: Store, tmp_path, suffix: str):
    path = tmp_path / f"review.{suffix}"
    exported = runner.invoke(app, ["review", "export", "--out", str(path), "--rubric", RUBRIC])
    assert exported.exit_code == 0, exported.output
    frame = read_review_file(path)
    assert list(frame.columns) == list(EXPORT_COLUMNS) and len(frame) == len(ANSWERS)
    assert sorted(frame["answer"]) == sorted(ANSWERS)
    # The teacher fills in every row (a comment with a comma, quotes and a newline survives the format).
    frame["human_score"] = [str(i * 0.5) for i in range(len(frame))]
    frame["comment"] = [f'row {i}, "quoted"\nsecond line' for i in range(len(frame))]
    _write(frame, path)
    imported = runner.invoke(app, ["review", "import", str(path), "--reviewer", "mr-jones"])
    assert imported.exit_code == 0, imported.output
    assert f"{len(ANSWERS)} review(s) stored" in imported.output
    for result_id, score, comment in zip(frame["id"], frame["human_score"], frame["comment"]):
        review = store.latest_review(result_id)
        assert (review.score, review.comment, review.reviewer) == (float(score), comment, "mr-jones")
    # Nothing is left to review; --all brings every row back with its review, and importing it again adds nothing.
    assert runner.invoke(app, ["review", "export", "--out", str(path)]).output.startswith("0 result(s)")
    runner.invoke(app, ["review", "export", "--out", str(path), "--all"])
    again = read_review_file(path)
    assert sorted(map(float, again["human_score"])) == sorted(map(float, frame["human_score"]))
    assert "0 review(s) stored, 6 unchanged" in runner.invoke(app, ["review", "import", str(path)]).output


def test_import_reports_bad_rows_with_their_numbers_and_stores_the_rest(store: Store, tmp_path):
    path = tmp_path / "review.csv"
    runner.invoke(app, ["review", "export", "--out", str(path)])
    frame = read_review_file(path)
    frame["human_score"] = ["2", "lots", "9", "", "1", "0"]
    frame.loc[4, "id"] = "no-such-id"
    _write(frame, path)
    result = runner.invoke(app, ["review", "import", str(path)])
    assert result.exit_code == 1
    assert "2 review(s) stored, 0 unchanged, 1 row(s) without a human_score, 3 refused" in result.output
    assert "row 2" in result.output and "'lots' is not a number" in result.output
    assert "row 3" in result.output and "outside 0..5" in result.output
    assert "row 5 (id 'no-such-id')" in result.output and "no stored result" in result.output
    assert sum(store.latest_review(i) is not None for i in frame["id"]) == 2


def test_pick_spreads_its_picks_over_the_score_range(store: Store):
    store.add_review(store.unreviewed()[0].id, ReviewInput(score=1), "alice")
    result = runner.invoke(app, ["review", "pick", "3", "--rubric", RUBRIC])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    reviewed = {r.id for r in store.results_with_reviews()}
    assert not reviewed & {line.split("\t")[0] for line in lines}


def test_import_of_a_missing_or_columnless_file_exits_2_naming_it(store: Store, tmp_path):
    missing = runner.invoke(app, ["review", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "no such review file" in missing.output
    (tmp_path / "bad.csv").write_text("answer\nhello\n")
    columnless = runner.invoke(app, ["review", "import", str(tmp_path / "bad.csv")])
    assert columnless.exit_code == 2 and "'id'" in columnless.output


def _write(frame: pd.DataFrame, path) -> None:
    if path.suffix == ".parquet":
        frame.astype({"human_score": "float64"}).to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
