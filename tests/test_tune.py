"""Rubric tuning: hit rates, CV-fitted thresholds on human scores, suggested key points, impact of a change."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from grader.cli import app
from grader.draft import draft_rubric
from grader.errors import InputFileError
from grader.rubric import parse_rubric
from grader.tune import TuneData, compare_rubrics, read_tune_data, tune_rubric

runner = CliRunner()

RUBRIC = parse_rubric(
    {
        "id": "stack",
        "question": "What is a stack?",
        "max_score": 2,
        "key_points": [
            {"id": "lifo", "text": "The last item pushed is the first one popped (last in, first out)."},
            {"id": "operations", "text": "Its operations are push, pop and peek at the top."},
        ],
    }
)
ANSWERS = [
    "A stack is last in first out: the last item pushed is popped first. You push, pop and peek at the top.",
    "Last in, first out. Function calls are kept on a call stack by the runtime.",
    "It supports push and pop on the top element. The runtime keeps function calls on a call stack.",
    "A queue where the first in is the first out.",
    "Compilers keep every function call on a call stack, so recursion uses it.",
]


def test_tune_report_counts_statuses_and_suggests_the_point_good_answers_share(grader):
    report = tune_rubric(grader, RUBRIC, TuneData(answers=ANSWERS, human=[2, 2, 2, 0, 1]))
    assert report.graded == 5 and report.pearson is not None
    lifo = report.key_points[0]
    assert sum(lifo.counts.values()) == 5 and lifo.counts["covered"] >= 1
    assert len(report.similarities) == 10
    assert report.separation["mean_score_high_half"] > report.separation["mean_score_low_half"]
    # Two well-scored answers mention the call stack, which no key point covers.
    assert any("call stack" in s.text and s.answers >= 2 for s in report.suggested_key_points)
    assert report.disagreements and report.threshold_fit is None  # too few answers to fit thresholds


def test_cv_fit_repairs_thresholds_that_flatten_every_grade_on_a_mohler_question(grader, shared_data):
    rows = pd.read_csv(shared_data / "mohler" / "mohler.csv", dtype={"id": str})
    q = rows[rows.id == "1.1"]
    drafted = draft_rubric(q.question.iloc[0], q.desired_answer.iloc[0], "mohler-1-1", 5)
    # Thresholds so strict that (almost) nothing is covered: grades stop ranking the answers.
    strict = drafted.model_copy(update={"thresholds": {"covered_threshold": 0.97, "partial_threshold": 0.95}})
    data = TuneData(answers=q.student_answer.astype(str).tolist(), human=q.score_avg.tolist())
    fit = tune_rubric(grader, strict, data).threshold_fit
    assert fit is not None and fit.folds == 5 and fit.before["covered_threshold"] == 0.97
    assert fit.heldout_pearson_after > fit.heldout_pearson_before + 0.3  # judged on answers each fold did not see
    assert fit.suggested["covered_threshold"] < 0.9
    assert fit.suggested["partial_threshold"] < fit.suggested["covered_threshold"]


def test_compare_shows_which_answers_change_and_identical_rubrics_change_none(grader):
    assert compare_rubrics(grader, RUBRIC, RUBRIC, ANSWERS).changed == 0
    strict = {"covered_threshold": 0.95, "partial_threshold": 0.9}
    stricter = RUBRIC.model_copy(update={"thresholds": strict, "version": 2})
    comparison = compare_rubrics(grader, RUBRIC, stricter, ANSWERS)
    assert comparison.changed >= 1 and comparison.mean_new < comparison.mean_old
    assert all(c.new < c.old for c in comparison.changes)
    assert abs(comparison.changes[0].delta) == comparison.max_abs_delta


def test_tune_cli_writes_markdown_html_and_plots_and_compare_prints_the_impact(grader, tmp_path):
    data = tmp_path / "answers.jsonl"
    data.write_text("\n".join(json.dumps({"answer": a, "score": s}) for a, s in zip(ANSWERS, [2, 2, 2, 0, 1])))
    old, new = tmp_path / "stack.yaml", tmp_path / "new" / "stack.yaml"
    old.write_text(RUBRIC.to_yaml())
    new.parent.mkdir()
    new.write_text(RUBRIC.model_copy(update={"key_points": RUBRIC.key_points[:1]}).to_yaml())
    out = runner.invoke(app, ["tune", str(old), str(data), "--out", str(tmp_path / "report")])
    assert out.exit_code == 0, out.output
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.md", "report.html", "similarity.png", "scores.png"} <= names
    assert "| lifo |" in (tmp_path / "report" / "report.md").read_text()
    out = runner.invoke(app, ["tune", "--compare", str(old), str(new), str(data)])
    assert out.exit_code == 0, out.output
    assert "of 5 answers change score" in out.output


def test_tune_data_without_an_answer_column_is_rejected_by_name(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,score\nhello,1\n")
    with pytest.raises(InputFileError, match="no 'answer' column"):
        read_tune_data(path)
    out = runner.invoke(app, ["tune", "max-pooling", str(path)])
    assert out.exit_code == 2 and "no 'answer' column" in out.output
