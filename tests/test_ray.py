"""``grader batch --engine ray``: the same file as the local engine, row by row, from a real local Ray.

One Ray (2 CPUs) serves the whole module. The 10k-row file repeats the shipped example answers
(eval/data/ml_interview) with distinct ids, shuffled, plus broken rows, so grading stays cheap
(``grade_batch`` grades each distinct pair of a block once) while every row goes through reading,
Ray, the actors, reordering and writing.
"""

from __future__ import annotations

import csv
import io
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from grader.cli import app
from grader.files import read_results
from grader.settings import PROJECT_ROOT

runner = CliRunner()
EXAMPLES = PROJECT_ROOT / "eval" / "data" / "ml_interview"
QUESTION = "Why do we use a validation set?"
REFERENCE = "A validation set estimates performance on unseen data. It is used to tune hyperparameters without touching the test set."


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module; the engine uses a Ray this process is already connected to."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def example_rows() -> list[dict]:
    """The 187 shipped example answers, plus rows each engine must turn into the same error or draft."""
    rows = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        rows += [{"rubric_id": data["rubric_id"], "answer": e["answer"]} for e in data["examples"]]
    rows += [
        {"rubric_id": "no-such-rubric", "answer": "Some answer."},
        {"rubric_id": "max-pooling", "answer": ""},
        {"answer": "An answer without a rubric."},
        {"question": QUESTION, "reference": REFERENCE, "answer": "It tells you how the model does on data it has not seen."},
        {"rubric_id": "max-pooling", "answer": "Bad BADBYTE byte in the answer."},
    ]
    return rows


def shuffled_rows(n: int, seed: int = 3) -> list[dict]:
    """``n`` rows drawn from ``example_rows`` in random order, with distinct ids except every 7th
    row (no id: its row number is its id); every 997th is a CSV record with too few fields."""
    base, rng = example_rows(), random.Random(seed)
    return [
        {"id": f"r{i}", "broken": True} if i % 997 == 500 else {**rng.choice(base), "id": "" if i % 7 == 0 else f"r{i}"}
        for i in range(n)
    ]


def write_answer_file(path: Path, rows: list[dict]) -> Path:
    header = ["id", "rubric_id", "answer", "question", "reference"]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row["id"], "max-pooling"] if row.get("broken") else [row.get(name, "") for name in header])
    path.write_bytes(text.getvalue().encode().replace(b"BADBYTE", b"\xff"))
    return path


def assert_same_results(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal row by row; score and coverage to their last rounded digit.

    An embedding depends on its batch mates in the 7th digit (sentence-transformers pads each batch
    to its longest text; up to 1.4e-7 measured), and the engines batch differently: different chunks
    here, and each Ray actor embeds the rubrics with its own first block. That can move a rounded
    score by 0.001 in a rare row (seen once in four benchmark comparisons). Everything else must match.
    """
    exact = [c for c in expected.columns if c not in ("score", "coverage")]
    assert list(got.columns) == list(expected.columns)
    for column in exact:  # column by column, for a failure that names the column
        pd.testing.assert_series_equal(got[column], expected[column])
    for column, unit in (("score", 1e-3), ("coverage", 1e-4)):
        pd.testing.assert_series_equal(got[column], expected[column], check_exact=False, rtol=0, atol=unit * 1.01)


def grade_file(source: Path, out: Path, *args: str) -> str:
    result = runner.invoke(app, ["batch", str(source), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ray_output_equals_local_output_row_by_row_on_10k_rows(local_ray, cli_env, rubrics):
    source = write_answer_file(cli_env / "answers.csv", shuffled_rows(10_000))
    local, on_ray = cli_env / "local.csv", cli_env / "ray.csv"
    # Different chunks on purpose (one chunk locally, two blocks on two actors): grades must not
    # depend on which answers are embedded together.
    grade_file(source, local, "--chunk-rows", "10000")
    summary = grade_file(source, on_ray, "--engine", "ray", "--chunk-rows", "5000")
    assert "10000 rows:" in summary and "2 Ray actor(s)" in summary

    expected, got = read_results(local), read_results(on_ray)
    assert len(got) == 10_000
    assert_same_results(got, expected)

    ids = got["id"].tolist()
    assert ids[0] == "1" and ids[7] == "8" and ids[1] == "r1"  # a missing id is the input's row number
    errors = got[got["status"] == "error"]["error"]
    assert len(errors) > 100 and errors.notna().all()
    for message in ("unknown rubric 'no-such-rubric'", "answer is empty", "not valid UTF-8", "2 fields where the header has 5"):
        assert errors.str.contains(message, regex=False).any(), message
    assert (got["status"] == "ok").sum() > 9_000
    drafted = got[(got["status"] == "ok") & ~got["rubric_id"].isin(list(rubrics))]  # question + reference rows
    assert len(drafted) > 10 and drafted["rubric_id"].nunique() == 1
    assert sorted(p.name for p in (cli_env / "ray.csv.rubrics").iterdir()) == sorted(
        p.name for p in (cli_env / "local.csv.rubrics").iterdir()
    ) != []


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_ray_writes_jsonl_and_parquet_like_the_local_engine(local_ray, cli_env, suffix):
    # Every kind of error row (lists, None and NaN must come out the same) plus a few graded answers.
    rows = [{"id": "x0", "broken": True}, *example_rows()[-5:], *example_rows()[:4:2]]
    source = write_answer_file(cli_env / "answers.csv", [{"id": "", **row} for row in rows])
    local, on_ray = cli_env / f"local{suffix}", cli_env / f"ray{suffix}"
    grade_file(source, local, "--quiet")
    grade_file(source, on_ray, "--quiet", "--engine", "ray", "--actors", "1", "--chunk-rows", "3")
    assert_same_results(read_results(on_ray), read_results(local))


def test_a_bad_input_file_fails_before_ray_starts_work(local_ray, cli_env):
    source = cli_env / "answers.csv"
    source.write_text("id,text\n1,hello\n")
    result = runner.invoke(app, ["batch", str(source), "--out", str(cli_env / "out.csv"), "--engine", "ray"])
    assert result.exit_code == 2
    assert "no 'answer' column" in result.output


def test_resume_and_address_are_refused_for_the_wrong_engine(cli_env):
    source = write_answer_file(cli_env / "answers.csv", shuffled_rows(5))
    out = str(cli_env / "out.csv")
    result = runner.invoke(app, ["batch", str(source), "--out", out, "--engine", "ray", "--resume"])
    assert result.exit_code == 2 and "--resume applies to --engine local only" in result.output
    result = runner.invoke(app, ["batch", str(source), "--out", out, "--address", "ray://example:10001"])
    assert result.exit_code == 2 and "apply to --engine ray only" in result.output


def test_a_ray_client_address_is_refused_with_what_to_do_instead(local_ray, cli_env):
    source = write_answer_file(cli_env / "answers.csv", shuffled_rows(5))
    result = runner.invoke(app, ["batch", str(source), "--out", str(cli_env / "out.csv"), "--engine", "ray", "--address", "ray://head:10001"])
    assert result.exit_code == 2
    assert "Ray Data does not run over Ray Client" in result.output and "--address auto" in result.output


@pytest.mark.parametrize("module", ["ray", "ray.data"])  # no Ray at all, or Ray without its [data] part
def test_without_the_ray_extra_the_cli_says_how_to_install_it(cli_env, monkeypatch, module):
    # None in sys.modules makes the import raise ImportError, as on a machine without the extra.
    monkeypatch.setitem(sys.modules, module, None)
    source = write_answer_file(cli_env / "answers.csv", shuffled_rows(5))
    result = runner.invoke(app, ["batch", str(source), "--out", str(cli_env / "out.csv"), "--engine", "ray"])
    assert result.exit_code == 2
    assert "--engine ray (Ray Data) needs the ray extra" in result.output and 'pip install "answer-grader[ray]"' in result.output
    assert not (cli_env / "out.csv").exists()
