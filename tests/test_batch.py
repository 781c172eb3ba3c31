"""Batch grading through its real entry points: the CLI (in process and as a killed subprocess) and the jobs API.

Every test checks the promise of DESIGN.md: every input row comes out exactly once, in input
order, and a row that cannot be graded says why instead of stopping the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from grader.batch import grade_batch, run_batch
from grader.cli import app
from grader.files import read_results
from grader.grade import Grader
from grader.jobs import JobLedger, ResumeMismatch
from grader.rubric import load_rubric, load_rubrics
from tests.conftest import serve_app
from grader.store import Store

runner = CliRunner()
GOOD = "Max-pooling keeps the largest value in each window, so it shrinks the feature maps and has no weights to learn."


def test_mixed_good_and_bad_csv_rows_each_come_out_once_in_order(grader, cli_env):
    source = cli_env / "answers.csv"
    source.write_bytes(
        b"\xef\xbb\xbfid,rubric_id,answer\n"  # a UTF-8 BOM before the header
        b'a1,max-pooling,"It keeps the max of each window, so it says ""this feature is here""\nand shrinks the map."\n'
        b"a2,max-pooling,\n"
        b"a3,no-such-rubric,Some answer.\n"
        b"a4,max-pooling,Bad \xff byte in the answer.\n"
        b"a5,max-pooling\n"
        b',max-pooling,"' + GOOD.encode() + b'"\n'
        b"a7,,An answer without a rubric.\n"
        b"a8,max-pooling," + b"x" * 30_000 + b"\n"
        b'a9,max-pooling,"' + GOOD.encode() + b'"\n'
    )
    out = cli_env / "results.csv"
    calls = grader.encoder.calls
    result = runner.invoke(app, ["batch", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "9 rows: 3 graded, 6 errors" in result.stdout and str(out) in result.stdout
    assert grader.encoder.calls - calls <= 1  # one chunk, one encode call
    rows = read_results(out)
    assert list(rows.columns) == ["id", "rubric_id", "score", "max_score", "coverage", "missing", "flags", "needs_review", "status", "error"]
    assert rows["id"].tolist() == ["a1", "a2", "a3", "a4", "a5", "6", "a7", "a8", "a9"]  # a missing id is the row number
    assert rows["status"].tolist() == ["ok", "error", "error", "error", "error", "ok", "error", "error", "ok"]
    errors = dict(zip(rows["id"], rows["error"]))
    assert "answer is empty" in errors["a2"]
    assert "unknown rubric 'no-such-rubric'" in errors["a3"]
    assert "not valid UTF-8" in errors["a4"]
    assert "2 fields where the header has 3" in errors["a5"]
    assert "no rubric_id, and no question + reference" in errors["a7"]
    assert "30000 characters" in errors["a8"]
    ok = rows[rows["status"] == "ok"]
    assert (ok["score"] > 0).all() and (ok["max_score"] == 5).all() and all(isinstance(m, list) for m in ok["missing"])
    assert rows.loc[5, "score"] == rows.loc[8, "score"]  # the same answer graded once, reported twice


def test_jsonl_with_a_broken_line_goes_on_and_writes_parquet_lists(grader, cli_env):
    source = cli_env / "answers.jsonl"
    lines = [
        json.dumps({"id": 1, "rubric_id": "max-pooling", "answer": GOOD}),
        '{"id": 2, "rubric_id": "max-pooling", "answer": "cut off',
        "",  # a blank line is not a row
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": 4, "rubric_id": "max-pooling"}),
        json.dumps({"id": 5, "rubric_id": "max-pooling", "answer": None}),
        json.dumps({"id": 6, "rubric_id": "pca", "answer": "PCA projects the data onto the directions of largest variance."}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = cli_env / "results.parquet"
    result = runner.invoke(app, ["batch", str(source), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = read_results(out)
    assert rows["id"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert rows["status"].tolist() == ["ok", "error", "error", "error", "error", "ok"]
    assert "line 2: not valid JSON" in rows.loc[1, "error"]
    assert "line 4: expected a JSON object" in rows.loc[2, "error"]
    assert "no 'answer' field" in rows.loc[3, "error"]
    assert "row has no answer" in rows.loc[4, "error"]
    assert rows.loc[0, "score"] > 0 and list(rows.loc[0, "missing"]) and all(isinstance(m, str) for m in rows.loc[0, "missing"])
    assert not (cli_env / "results.parquet.parts").exists()


def test_question_and_reference_rows_draft_one_rubric_per_reference_beside_the_output(grader, cli_env):
    question = "What is a queue?"
    reference = "A queue is first in, first out. Items join at the back and leave from the front."
    frame = pd.DataFrame(
        {
            "question": [question, question, "What is a stack?"],
            "reference": [reference, reference, "A stack is last in, first out: the last item pushed is popped first."],
            "answer": ["Items leave in the order they came, first in first out.", "No idea.", "Last in, first out."],
        }
    )
    source = cli_env / "answers.csv"
    frame.to_csv(source, index=False)
    out = cli_env / "results.jsonl"
    result = runner.invoke(app, ["batch", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_results(out)
    assert rows["status"].tolist() == ["ok", "ok", "ok"] and rows["id"].tolist() == ["1", "2", "3"]
    drafted = sorted((cli_env / "results.jsonl.rubrics").glob("*.yaml"))
    assert len(drafted) == 2 and "2 rubric(s) drafted" in result.stdout
    queue = load_rubric(cli_env / "results.jsonl.rubrics" / f"{rows.loc[0, 'rubric_id']}.yaml")  # id matches file name
    assert rows.loc[1, "rubric_id"] == queue.id and queue.question == question
    assert rows.loc[0, "score"] > rows.loc[1, "score"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("answers.csv", b"id,text\n1,hello\n", "no 'answer' column (columns found: 'id', 'text')"),
        ("answers.parquet", b"not parquet at all", "not a readable Parquet file"),
        ("answers.xlsx", b"", "unsupported input file type '.xlsx'"),
        ("missing.csv", None, "no such input file"),
    ],
)
def test_an_unreadable_file_exits_2_with_a_message(cli_env, name, content, message):
    source = cli_env / name
    if content is not None:
        source.write_bytes(content)
    result = runner.invoke(app, ["batch", str(source), "--out", str(cli_env / "out.csv")])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_grade_batch_grades_identical_pairs_once_and_numbers_rows_without_ids(grader, rubrics):
    seen: list[int] = []

    class CountingGrader(Grader):
        def grade_many(self, items):
            seen.append(len(items))
            return super().grade_many(items)

    counting = CountingGrader(grader.settings, encoder=grader.encoder)
    frame = pd.DataFrame({"rubric_id": ["max-pooling", "max-pooling", "pca", "max-pooling"], "answer": [GOOD, GOOD, GOOD, ""]})
    out = grade_batch(frame, counting, rubrics)
    assert seen == [3]  # one call: (max-pooling, GOOD), (pca, GOOD), (max-pooling, "")
    assert out["id"].tolist() == ["1", "2", "3", "4"]
    assert out["status"].tolist() == ["ok", "ok", "ok", "error"]


def _wait_for_progress(db: Path, proc: subprocess.Popen, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"grader batch ended before it could be killed:\n{proc.stderr.read().decode()}"
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as con:
                    done = con.execute("SELECT rows_done FROM batch_jobs").fetchone()
            except sqlite3.OperationalError:  # tables not created yet
                done = None
            if done and done[0] > 0:
                return done[0]
        time.sleep(0.02)
    raise AssertionError("no chunk was committed in time")


@pytest.mark.slow
def test_resume_after_kill_9_finishes_without_regrading_or_duplicating(grader, cli_env):
    # Few distinct answers, so the in-process resume is cheap: identical pairs in a chunk are graded once.
    topics = ["max-pooling", "pca", "overfitting-underfitting"]
    words = ["shrinks", "keeps", "reduces", "projects"]
    source = cli_env / "big.jsonl"
    with open(source, "w", encoding="utf-8") as fh:
        for i in range(3000):
            answer = "" if i % 500 == 7 else f"It {words[i % 4]} the {words[(i // 4) % 4]} maps."
            fh.write(json.dumps({"id": f"r{i}", "rubric_id": topics[i % 3], "answer": answer}) + "\n")
    out = cli_env / "results.csv"
    db = cli_env / "grader.db"
    cmd = [sys.executable, "-m", "grader.cli", "batch", str(source), "--out", str(out), "--chunk-rows", "100"]
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_progress(db, proc)
        proc.kill()  # SIGKILL: no cleanup, possibly mid-write
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(db) as con:
        committed = con.execute("SELECT rows_done FROM batch_jobs").fetchone()[0]
    assert 0 < committed < 3000
    partial = cli_env / "results.csv.partial"
    with open(partial, "ab") as fh:
        fh.write(b"r99999,max-pooling,1.0,5.0,0.2,torn")  # what a kill in the middle of a write leaves

    calls = grader.encoder.calls
    result = runner.invoke(app, ["batch", str(source), "--out", str(out), "--resume", "--chunk-rows", "100"])
    assert result.exit_code == 0, result.output
    assert f"resumed after row {committed}" in result.stdout
    assert grader.encoder.calls - calls == -(-(3000 - committed) // 100)  # only the rest was graded
    rows = read_results(out)
    assert rows["id"].tolist() == [f"r{i}" for i in range(3000)]  # each row once, in order, no torn row
    errors = rows[rows["status"] == "error"]
    assert errors["id"].tolist() == [f"r{i}" for i in range(3000) if i % 500 == 7]
    assert rows.loc[rows["status"] == "ok", "score"].notna().all()
    assert not partial.exists()


# -- the jobs API --------------------------------------------------------------------------------


def _wait_done(client: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def test_jobs_api_grades_an_upload_and_json_rows(grader, settings, tmp_path):
    api_settings = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'api.db'}"})
    csv_body = "id,rubric_id,answer\n" + "".join(f'q{i},max-pooling,"{GOOD} ({i % 3})"\n' for i in range(150)) + "q150,max-pooling,\n"
    for base in serve_app(api_settings):
        with httpx.Client(base_url=base, timeout=60) as client:
            created = client.post("/v1/jobs", files={"file": ("answers.csv", csv_body, "text/csv")})
            assert created.status_code == 202, created.text
            job = created.json()
            assert job["state"] in ("queued", "running") and job["rows_total"] == 151
            rows = client.post("/v1/jobs", json={"rows": [{"id": "x", "rubric_id": "pca", "answer": GOOD}], "format": "csv"})
            assert rows.status_code == 202, rows.text

            status = _wait_done(client, job["id"])
            assert status["state"] == "done" and status["rows_done"] == 151, status
            download = client.get(status["results_url"])
            assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
            (tmp_path / "results.csv").write_bytes(download.content)
            got = read_results(tmp_path / "results.csv")
            assert got["id"].tolist() == [f"q{i}" for i in range(151)]
            assert got["status"].tolist() == ["ok"] * 150 + ["error"]

            assert _wait_done(client, rows.json()["id"])["state"] == "done"
            assert client.get(f"/v1/jobs/{rows.json()['id']}/results").text.startswith("id,rubric_id,score")

            bad = client.post("/v1/jobs", files={"file": ("answers.csv", "id,text\n1,hi\n", "text/csv")})
            assert bad.status_code == 422 and "no 'answer' column" in bad.json()["error"]["message"]
            missing = client.get(f"/v1/jobs/{uuid.uuid4().hex}")
            assert missing.status_code == 404
    assert (tmp_path / "api.jobs" / job["id"] / "results.csv").is_file()  # kept beside the database


def test_an_interrupted_api_job_resumes_when_the_server_starts(grader, settings, tmp_path):
    api_settings = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'api.db'}"})
    job_id = uuid.uuid4().hex
    folder = tmp_path / "api.jobs" / job_id
    folder.mkdir(parents=True)
    source = folder / "input.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"j{i}", "rubric_id": "max-pooling", "answer": f"It shrinks the maps ({i % 4})."}) + "\n" for i in range(300))
    )
    ledger = JobLedger(Store(api_settings.database_url))
    # A server stopped after one chunk: the job is left "running" with 128 rows committed.
    chunks = iter([False, True])
    summary = run_batch(
        source, folder / "results.jsonl", grader, load_rubrics(api_settings.rubrics_dir), ledger,
        job_id=job_id, source="api", chunk_rows=128, should_stop=lambda: next(chunks),
    )
    assert not summary.finished and ledger.get(job_id).rows_done == 128 and ledger.get(job_id).state == "running"
    first_chunk = _chunk_commit_times(tmp_path / "api.db", job_id)[0]

    for base in serve_app(api_settings):
        with httpx.Client(base_url=base, timeout=60) as client:
            status = _wait_done(client, job_id)
            assert status["state"] == "done" and status["rows_done"] == 300, status
            lines = client.get(status["results_url"]).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"j{i}" for i in range(300)]
    assert ledger.tally(job_id).graded == 300
    assert _chunk_commit_times(tmp_path / "api.db", job_id)[0] == first_chunk  # resumed, not started over


def _chunk_commit_times(db: Path, job_id: str) -> list[str]:
    with sqlite3.connect(db) as con:
        query = "SELECT committed_at FROM batch_job_chunks WHERE job_id = ? ORDER BY \"index\""
        return [row[0] for row in con.execute(query, (job_id,))]


def test_stdin_jsonl_is_graded_and_cannot_be_resumed(grader, cli_env):
    out = cli_env / "results.jsonl"
    lines = json.dumps({"rubric_id": "max-pooling", "answer": GOOD}) + "\n" + json.dumps({"rubric_id": "pca", "answer": ""})
    result = runner.invoke(app, ["batch", "-", "--out", str(out)], input=lines)
    assert result.exit_code == 0, result.output
    assert read_results(out)["status"].tolist() == ["ok", "error"]
    again = runner.invoke(app, ["batch", "-", "--out", str(out), "--resume"], input=lines)
    assert again.exit_code == 2 and "stdin cannot be read twice" in again.stderr


def test_resume_with_changed_thresholds_is_refused_naming_what_changed(grader, rubrics, tmp_path):
    source = write_rows(tmp_path / "answers.jsonl", [{"rubric_id": "max-pooling", "answer": f"{GOOD} {i}"} for i in range(3)])
    ledger = JobLedger(Store(f"sqlite:///{tmp_path / 'grader.db'}"))
    stops = iter([False, True])
    partial = run_batch(source, tmp_path / "out.csv", grader, rubrics, ledger, chunk_rows=1, should_stop=lambda: next(stops))
    assert not partial.finished
    stricter = grader.settings.model_copy(update={"thresholds": grader.settings.thresholds.model_copy(update={"covered_threshold": 0.7})})
    with pytest.raises(ResumeMismatch, match="thresholds changed since it started; run again without --resume"):
        run_batch(source, tmp_path / "out.csv", Grader(stricter, encoder=grader.encoder), rubrics, ledger, resume=True)
    finished = run_batch(source, tmp_path / "out.csv", grader, rubrics, ledger, resume=True, chunk_rows=1)
    assert finished.resumed_from == 1 and read_results(tmp_path / "out.csv")["status"].tolist() == ["ok"] * 3


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
