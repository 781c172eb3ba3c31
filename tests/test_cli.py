"""Every CLI command through its real entry point (Typer's runner); input errors exit 2 without a traceback."""

import json

import pytest
from typer.testing import CliRunner

from grader.cli import app

runner = CliRunner()


def test_grade_prints_the_result_json(grader):
    out = runner.invoke(app, ["grade", "max-pooling", "It has no weights to learn, so it is a free way to shrink maps."])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["rubric_id"] == "max-pooling" and 0 < result["score"] <= 5
    assert {"key_points", "missing", "flags", "confidence", "needs_review", "fingerprint"} <= result.keys()


def test_grade_reads_stdin_and_accepts_a_rubric_path(grader, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("id: tiny\nquestion: What is a stack?\nkey_points:\n  - id: lifo\n    text: A stack is last in, first out.\n")
    out = runner.invoke(app, ["grade", str(path), "-"], input="The last item pushed is the first one popped.")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["key_points"][0]["id"] == "lifo"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["grade", "no-such-rubric", "text"], None, "unknown rubric 'no-such-rubric'"),
        (["grade", "max-pooling", ""], None, "answer is empty"),
        (["grade", "max-pooling", "-"], b"\xff\xfe\x00bad", "not valid UTF-8"),
        (["grade", "missing-file.yaml", "text"], None, "no such rubric file"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(grader, args, stdin, message):
    out = runner.invoke(app, args, input=stdin)
    assert out.exit_code == 2
    assert message in out.stderr and "Traceback" not in out.output


def test_malformed_rubric_file_exits_2_naming_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: bad\nquestion: Why?\nkey_points:\n  - id: a\n    text: A point.\n    weight: -1\n")
    out = runner.invoke(app, ["rubric", "check", str(path)])
    assert out.exit_code == 2
    assert str(path) in out.stderr and "key_points.0.weight" in out.stderr


def test_rubric_check_passes_on_the_shipped_rubrics(grader):
    out = runner.invoke(app, ["rubric", "check"])
    assert out.exit_code == 0, out.output
    assert "23 rubric(s) valid, 0 warning(s)" in out.stdout


def test_rubric_draft_prints_a_loadable_rubric(tmp_path):
    out = runner.invoke(
        app,
        ["rubric", "draft", "-q", "What is a queue?", "-r", "A queue is first in, first out. Items join at the back.", "--id", "queue"],
    )
    assert out.exit_code == 0, out.output
    (tmp_path / "queue.yaml").write_text(out.stdout)
    check = runner.invoke(app, ["rubric", "check", str(tmp_path / "queue.yaml")])
    assert check.exit_code == 0 and "1 rubric(s) valid" in check.stdout
