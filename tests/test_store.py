"""The store on SQLite and on PostgreSQL: the same tests, the same SQLAlchemy code, real databases."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from tests.conftest import store_at_revision

from grader.errors import UnknownRubric
from grader.jobs import ChunkTally, JobLedger, LeaseLost
from grader.match import rubric_texts, token_texts
from grader.rubric import Rubric, parse_rubric
from grader.store import Base, EmbeddingRow, Store, _alembic_config, schema_revision

HEAD = "0004"


def _rubric(rid: str = "store-test", text_: str = "It normalises each feature.") -> Rubric:
    return parse_rubric(
        {"id": rid, "question": "Why normalise features?", "key_points": [{"id": "kp1", "text": text_}]}, "test"
    )


def test_a_new_store_is_migrated_to_head_and_matches_the_models(store_url):
    store = Store(store_url)
    assert schema_revision(store.engine) == HEAD
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    Store(store_url)  # opening again is a no-op
    assert schema_revision(store.engine) == HEAD


def test_a_store_from_before_a_migration_is_upgraded_and_keeps_its_rows(store_url):
    engine = store_at_revision(
        store_url,
        "0001",
        "INSERT INTO batch_jobs (id, source, input_path, output_path, fingerprint, fingerprint_hash, state,"
        " rows_done, chunks_done, output_position, created_at, updated_at)"
        " VALUES ('old', 'api', 'in.csv', 'out.csv', '{}', 'h', 'queued', 0, 0, 0, :t, :t)",
        {"t": "2026-01-01 00:00:00"},
    )
    assert "owner" not in {c["name"] for c in inspect(engine).get_columns("batch_jobs")}
    ledger = JobLedger(Store(store_url), owner="w1")
    assert schema_revision(engine) == HEAD
    claimed = ledger.claim("api", lease_seconds=30)
    assert claimed is not None and claimed.id == "old" and claimed.owner == "w1"
    # Times come back as aware UTC on both backends (SQLite stores them naive), so the jobs API says "+00:00".
    assert claimed.created_at.utcoffset() == claimed.updated_at.utcoffset() == timedelta(0)
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


def test_rubric_versions_are_append_only_and_deletion_hides_them(store_url):
    store = Store(store_url)
    first = store.put_rubric(_rubric())
    assert first.version == 1 and store.put_rubric(_rubric()).version == 1  # same content: no new version
    second = store.put_rubric(_rubric(text_="It puts features on one scale."))
    assert second.version == 2 and store.get_rubric("store-test").version == 2
    assert store.get_rubric("store-test", 1).key_points[0].text == "It normalises each feature."
    store.delete_rubric("store-test")
    assert store.rubric_versions("store-test") == [1, 2]
    assert [r.id for r in store.list_rubrics()] == []
    with pytest.raises(UnknownRubric):
        store.get_rubric("store-test")
    assert store.get_rubric("store-test", 2).version == 2  # old results stay reproducible


def test_concurrent_rubric_writes_lose_and_duplicate_no_version(store_url):
    store = Store(store_url)
    texts = [f"It rescales feature number {i}." for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        stored = list(pool.map(lambda t: store.put_rubric(_rubric(text_=t)), texts))
    assert sorted(r.version for r in stored) == list(range(1, 13))
    assert store.rubric_versions("store-test") == list(range(1, 13))
    by_version = {v: store.get_rubric("store-test", v).key_points[0].text for v in range(1, 13)}
    assert sorted(by_version.values()) == sorted(texts)


def test_results_round_trip_with_their_fingerprint(store_url, grader, rubrics):
    store = Store(store_url)
    answers = ["Max pooling keeps the strongest activation in each window and shrinks the feature map.", "no idea"]
    results = grader.grade_many([(rubrics["max-pooling"], a) for a in answers])
    ids = store.save_results(answers, results)
    assert len(set(ids)) == 2
    for result_id, answer, result in zip(ids, answers, results):
        got_answer, got = store.get_result(result_id)
        assert got_answer == answer and got == result
        assert got.fingerprint.model == grader.encoder.name
    assert store.get_result(str(uuid.uuid4())) is None


def _queue_jobs(ledger: JobLedger, n: int) -> list[str]:
    ids = [f"job{i:03d}" for i in range(n)]
    for job_id in ids:
        ledger.start(job_id, input_path="in.jsonl", output_path=f"{job_id}.jsonl", input_identity=None,
                     fingerprint={}, rows_total=1, source="api", state="queued")
    return ids


def test_job_claims_are_atomic_across_concurrent_workers(store_url):
    store = Store(store_url)
    ids = _queue_jobs(JobLedger(store), 24)
    claimed: dict[str, list[str]] = {}
    lock, start = threading.Lock(), threading.Barrier(4)

    def worker(name: str) -> None:
        ledger = JobLedger(Store(store_url), owner=name)  # its own engine and pool, like a server process
        start.wait()
        while (job := ledger.claim("api", lease_seconds=60)) is not None:
            with lock:
                claimed.setdefault(job.id, []).append(name)
            ledger.set_state(job.id, "done")

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(claimed) == ids
    assert all(len(owners) == 1 for owners in claimed.values()), {k: v for k, v in claimed.items() if len(v) > 1}


def test_a_dead_workers_job_is_claimed_after_its_lease_and_it_cannot_commit_any_more(store_url):
    store = Store(store_url)
    (job_id,) = _queue_jobs(JobLedger(store), 1)
    dead, alive = JobLedger(store, owner="dead"), JobLedger(store, owner="alive")
    assert dead.claim("api", lease_seconds=1).id == job_id
    assert alive.claim("api", lease_seconds=30) is None  # held
    time.sleep(1.2)
    assert alive.claim("api", lease_seconds=30).id == job_id  # lease ran out
    assert not dead.renew(job_id, 30)
    with pytest.raises(LeaseLost):
        dead.commit_chunk(job_id, 0, 1, 10, ChunkTally(graded=1), {})
    alive.commit_chunk(job_id, 0, 1, 10, ChunkTally(graded=1), {})
    assert alive.get(job_id).rows_done == 1
    alive.release(job_id)
    assert JobLedger(store, owner="next").claim("api", lease_seconds=30).id == job_id  # released: at once


def test_key_point_embeddings_are_shared_through_the_store(store_url, grader, rubrics):
    from grader.grade import Grader

    store = Store(store_url)
    answer = "Max pooling keeps the strongest activation in each window."
    first = Grader(grader.settings, grader.encoder, vectors=store)
    expected = first.grade(rubrics["max-pooling"], answer)
    with store.session() as s:
        (row,) = s.query(EmbeddingRow).all()
    assert row.key.endswith(rubrics["max-pooling"].content_hash) and row.dim == grader.encoder.dim

    class SpansOnly:  # the real encoder, recording what it is asked to embed
        def __init__(self, inner):
            self.inner, self.texts = inner, []
            self.name, self.weights_hash, self.dim = inner.name, inner.weights_hash, inner.dim

        def read(self, texts):
            self.texts += texts
            return self.inner.read(texts)

        def read_apart(self, groups):
            self.texts += [t for group in groups for t in group]
            return self.inner.read_apart(groups)

    recording = SpansOnly(grader.encoder)
    second = Grader(grader.settings, recording, vectors=Store(store_url))  # a new process's empty memory cache
    assert second.grade(rubrics["max-pooling"], answer) == expected
    # The key-point embeddings came from the store: only the word tokens of the question and key points
    # are computed again (they are not stored), so the contradictions and misconceptions are not embedded.
    rubric = rubrics["max-pooling"]
    not_needed = set(rubric_texts(rubric)) - set(token_texts(rubric))
    assert recording.texts and not_needed and not not_needed & set(recording.texts)
