"""`grader serve --workers 4` against one PostgreSQL store: concurrent grades, rubric writes and
batch jobs lose nothing and duplicate nothing. A real server in a subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pgserver import free_port
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow
KEY = "workers-test-key"
WORKERS = 4


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory):
    """Four server processes sharing one PostgreSQL database; yields (base URL, database URL)."""
    db_url = postgres.create_database(f"w_{uuid.uuid4().hex[:12]}")
    port, folder = free_port(), tmp_path_factory.mktemp("workers")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADER_DATABASE_URL": db_url,
        "GRADER_JOBS_DIR": str(folder / "jobs"),
        "GRADER_API_KEYS": KEY,
        "GRADER_JOB_LEASE_SECONDS": "20",
    }
    log = open(folder / "server.log", "wb")
    cmd = [sys.executable, "-m", "grader.cli", "serve", "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_all_workers_answer(server, base, folder / "server.log")
        yield base, db_url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _wait_until_all_workers_answer(server: subprocess.Popen, base: str, log: Path, timeout: float = 600) -> None:
    """Every worker logs 'Application startup complete' once its model is loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        if log.read_text().count("Application startup complete") >= WORKERS:
            assert httpx.get(f"{base}/healthz", timeout=30).json()["store"] is True
            return
        time.sleep(0.5)
    raise RuntimeError(f"the workers did not start in {timeout} s:\n{log.read_text()[-3000:]}")


def test_concurrent_grades_are_each_stored_exactly_once(cluster):
    base, db_url = cluster
    answers = [f"Max pooling keeps the largest value in each window, answer number {i}." for i in range(160)]

    def grade(answer: str) -> str:
        with httpx.Client(base_url=base, timeout=120) as client:  # a new connection each time: spread over workers
            response = client.post("/v1/grade", json={"rubric_id": "max-pooling", "answer": answer})
        assert response.status_code == 200, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(12) as pool:
        ids = list(pool.map(grade, answers))
    assert len(set(ids)) == len(answers)
    with create_engine(db_url).connect() as conn:
        rows = conn.execute(text("SELECT id, answer FROM results WHERE answer LIKE 'Max pooling keeps the largest%'")).all()
    assert sorted(r.id for r in rows) == sorted(ids)
    assert sorted(r.answer for r in rows) == sorted(answers)


def test_concurrent_rubric_writes_get_one_version_each(cluster):
    base, _ = cluster
    texts = [f"Pooling reduces the size of feature map number {i}." for i in range(16)]

    def put(key_point: str) -> int:
        body = {"question": "What does pooling do?", "key_points": [{"id": "kp1", "text": key_point}]}
        with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {KEY}"}) as client:
            response = client.put("/v1/rubrics/pooling-race", json=body)
        assert response.status_code == 200, response.text
        return response.json()["version"]

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(put, texts))
    assert sorted(versions) == list(range(1, 17))
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/v1/rubrics/pooling-race/versions").json()["versions"] == list(range(1, 17))
        stored = {client.get(f"/v1/rubrics/pooling-race?version={v}").json()["key_points"][0]["text"] for v in versions}
    assert stored == set(texts)


def test_batch_jobs_run_once_each_whichever_worker_takes_them(cluster):
    base, db_url = cluster
    jobs: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        for j in range(6):
            rows = [{"id": f"{j}-{i}", "rubric_id": "pca", "answer": f"PCA projects the data onto {i} directions."}
                    for i in range(30 + 20 * j)] + [{"id": f"{j}-bad", "rubric_id": "no-such-rubric", "answer": "x"}]
            created = client.post("/v1/jobs", json={"rows": rows, "format": "jsonl"})
            assert created.status_code == 202, created.text
            jobs[created.json()["id"]] = len(rows)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = {job_id: client.get(f"/v1/jobs/{job_id}").json() for job_id in jobs}
            if all(s["state"] in ("done", "failed") for s in states.values()):
                break
            time.sleep(0.5)
        assert all(s["state"] == "done" for s in states.values()), states
        for job_id, n in jobs.items():
            lines = [json.loads(line) for line in client.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
            assert len(lines) == n and len({line["id"] for line in lines}) == n
            assert [line["status"] for line in lines].count("error") == 1
    with create_engine(db_url).connect() as conn:
        for job_id, n in jobs.items():
            graded, errors, chunks = conn.execute(
                text("SELECT sum(graded), sum(errors), count(*) FROM batch_job_chunks WHERE job_id = :j"), {"j": job_id}
            ).one()
            assert (graded, errors) == (n - 1, 1), job_id
            assert chunks == -(-n // 128)  # every chunk committed once
        owners = conn.execute(text("SELECT DISTINCT owner FROM batch_jobs WHERE id = ANY(:ids)"), {"ids": list(jobs)}).scalars().all()
    assert owners and all(owner is not None for owner in owners)
