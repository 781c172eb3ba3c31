"""Batch jobs in the store: what a job reads and writes, what it was graded with, how far it got.

A job commits one row per chunk (``batch_job_chunks``) in the same transaction that advances
``rows_done``, so after a kill the store says exactly which rows reached the output file and
where that file must be cut. The fingerprint (model hash, thresholds, grader version, and the hash
of every rubric the committed rows used) stops a resume from mixing grades made with different
settings in one file.

Several server processes can share one store's jobs: a worker *claims* a job with one conditional
UPDATE (it wins only if the job is unfinished and nobody holds an unexpired lease), renews the
lease while it grades, and commits chunks only while it still owns the job. A worker that dies
stops renewing, and another one resumes the job after the lease runs out.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from .errors import GraderError
from .store import Base, Store, UtcDateTime, utc_now

JobState = Literal["queued", "running", "done", "failed"]
UNFINISHED: tuple[JobState, ...] = ("queued", "running")


class BatchJobRow(Base):
    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), default="cli", index=True)
    input_path: Mapped[str] = mapped_column(Text)
    output_path: Mapped[str] = mapped_column(Text)
    input_identity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fingerprint: Mapped[dict] = mapped_column(JSON)
    fingerprint_hash: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), index=True)
    rows_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    output_position: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True, doc="the worker that claimed the job")
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True, doc="epoch seconds; claimable after")


class BatchChunkRow(Base):
    """One committed chunk: the rows it ended at, where the output ended, and its tallies."""

    __tablename__ = "batch_job_chunks"

    job_id: Mapped[str] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    rows_end: Mapped[int] = mapped_column(Integer)
    output_position: Mapped[int] = mapped_column(Integer)
    graded: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    score_sums: Mapped[dict] = mapped_column(JSON, doc="rubric id -> [rows graded, sum of scores]")
    committed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


@dataclass(frozen=True)
class Job:
    """A snapshot of a job row, safe to use after its session closed."""

    id: str
    source: str
    input_path: str
    output_path: str
    input_identity: str | None
    fingerprint: dict
    fingerprint_hash: str
    state: str
    rows_total: int | None
    rows_done: int
    chunks_done: int
    output_position: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    owner: str | None = None
    lease_until: float | None = None

    @classmethod
    def of(cls, row: BatchJobRow) -> "Job":
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


@dataclass
class ChunkTally:
    graded: int = 0
    errors: int = 0
    score_sums: dict[str, list[float]] = field(default_factory=dict)

    def add(self, other: "ChunkTally") -> None:
        self.graded += other.graded
        self.errors += other.errors
        for rid, (n, total) in other.score_sums.items():
            acc = self.score_sums.setdefault(rid, [0, 0.0])
            acc[0] += n
            acc[1] += total

    @property
    def mean_scores(self) -> dict[str, float]:
        return {rid: round(total / n, 3) for rid, (n, total) in sorted(self.score_sums.items()) if n}


class ResumeMismatch(GraderError):
    """A resumed job would be graded with different settings than its committed rows."""


class LeaseLost(GraderError):
    """Another worker owns this job now (our lease ran out); stop without committing."""

    status_code = 409


def fingerprint_hash(fingerprint: dict) -> str:
    """Hash of the settings part; rubric hashes are compared one by one (only the rubrics a job used matter)."""
    settings_part = {k: v for k, v in fingerprint.items() if k != "rubrics"}
    return hashlib.sha256(json.dumps(settings_part, sort_keys=True).encode()).hexdigest()[:32]


def job_id_for(input_path: str, identity: str | None, output: Path) -> str:
    """The same input file (path and bytes) written to the same output is the same job."""
    key = f"{Path(input_path).resolve() if input_path != '-' else '-'}\n{identity}\n{output.resolve()}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class JobLedger:
    """Job and progress rows; every method is one short transaction, safe from any thread.

    A ledger with an ``owner`` (a server worker) commits chunks only of jobs that owner holds.
    """

    def __init__(self, store: Store, owner: str | None = None) -> None:
        self.store = store
        self.owner = owner

    def get(self, job_id: str) -> Job | None:
        with self.store.session() as s:
            row = s.get(BatchJobRow, job_id)
            return None if row is None else Job.of(row)

    def start(
        self,
        job_id: str,
        *,
        input_path: str,
        output_path: str,
        input_identity: str | None,
        fingerprint: dict,
        rows_total: int | None,
        source: str = "cli",
        state: JobState = "running",
    ) -> Job:
        """Create the job, or reset it to nothing done (a fresh run of the same input and output)."""
        with self.store.session.begin() as s:
            s.execute(delete(BatchChunkRow).where(BatchChunkRow.job_id == job_id))
            row = s.get(BatchJobRow, job_id) or BatchJobRow(id=job_id, created_at=utc_now())
            row.source, row.input_path, row.output_path = source, input_path, output_path
            row.input_identity, row.fingerprint = input_identity, fingerprint
            row.fingerprint_hash = fingerprint_hash(fingerprint)
            row.state, row.rows_total, row.error = state, rows_total, None
            row.rows_done = row.chunks_done = row.output_position = 0
            s.add(row)
            s.flush()
            return Job.of(row)

    def set_state(self, job_id: str, state: JobState, error: str | None = None, **values) -> None:
        with self.store.session.begin() as s:
            s.execute(
                update(BatchJobRow).where(BatchJobRow.id == job_id).values(state=state, error=error, updated_at=utc_now(), **values)
            )

    def commit_chunk(
        self, job_id: str, index: int, rows_end: int, output_position: int, tally: ChunkTally, rubric_hashes: dict[str, str]
    ) -> None:
        """Record a chunk that is durably in the output, and the rubrics it used; one transaction."""
        with self.store.session.begin() as s:
            s.add(
                BatchChunkRow(
                    job_id=job_id,
                    index=index,
                    rows_end=rows_end,
                    output_position=output_position,
                    graded=tally.graded,
                    errors=tally.errors,
                    score_sums=tally.score_sums,
                )
            )
            job = s.get(BatchJobRow, job_id, with_for_update=self.owner is not None)
            if self.owner is not None and job.owner != self.owner:
                raise LeaseLost(f"job {job_id} is now run by {job.owner}; this worker stops it", field="job_id")
            job.fingerprint = {**job.fingerprint, "rubrics": {**job.fingerprint.get("rubrics", {}), **rubric_hashes}}
            job.rows_done, job.chunks_done, job.output_position = rows_end, index + 1, output_position

    def claim(self, source: str, lease_seconds: float) -> Job | None:
        """Take the oldest unfinished job nobody holds (or whose holder's lease ran out), atomically.

        Each candidate is taken with one conditional UPDATE; under concurrent claims exactly one
        UPDATE matches the row (PostgreSQL re-checks the condition after the row lock, SQLite
        serialises writers), the others match nothing and move to the next candidate.
        """
        if self.owner is None:
            raise ValueError("claim needs a ledger with an owner")
        now = time.time()
        claimable = BatchJobRow.state.in_(UNFINISHED) & or_(BatchJobRow.lease_until.is_(None), BatchJobRow.lease_until < now)
        with self.store.session() as s:
            candidates = list(
                s.scalars(
                    select(BatchJobRow.id)
                    .where(BatchJobRow.source == source, claimable)
                    .order_by(BatchJobRow.created_at, BatchJobRow.id)
                    .limit(16)
                )
            )
        for job_id in candidates:
            with self.store.session.begin() as s:
                taken = s.execute(
                    update(BatchJobRow)
                    .where(BatchJobRow.id == job_id, claimable)
                    .values(owner=self.owner, lease_until=now + lease_seconds)
                    .execution_options(synchronize_session=False)
                ).rowcount
            if taken == 1:
                return self.get(job_id)
        return None

    def renew(self, job_id: str, lease_seconds: float) -> bool:
        """Extend our lease on ``job_id``; False when another worker took it over."""
        with self.store.session.begin() as s:
            return (
                s.execute(
                    update(BatchJobRow)
                    .where(BatchJobRow.id == job_id, BatchJobRow.owner == self.owner)
                    .values(lease_until=time.time() + lease_seconds)
                    .execution_options(synchronize_session=False)
                ).rowcount
                == 1
            )

    def release(self, job_id: str) -> None:
        """Give the job up now (finished, or stopping): claimable at once if still unfinished."""
        with self.store.session.begin() as s:
            s.execute(
                update(BatchJobRow)
                .where(BatchJobRow.id == job_id, BatchJobRow.owner == self.owner)
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def tally(self, job_id: str) -> ChunkTally:
        total = ChunkTally()
        with self.store.session() as s:
            for row in s.scalars(select(BatchChunkRow).where(BatchChunkRow.job_id == job_id)):
                total.add(ChunkTally(row.graded, row.errors, row.score_sums))
        return total

    def unfinished(self, source: str) -> list[Job]:
        with self.store.session() as s:
            rows = s.scalars(
                select(BatchJobRow)
                .where(BatchJobRow.source == source, BatchJobRow.state.in_(UNFINISHED))
                .order_by(BatchJobRow.created_at)
            )
            return [Job.of(r) for r in rows]

    def count(self) -> int:
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(BatchJobRow)) or 0)


def fingerprint_changes(old: dict, new: dict, rubric_hashes: dict[str, str]) -> list[str]:
    """What differs between a job's fingerprint and the current one, naming each part.

    Only rubrics the committed rows used are compared; drafted rubrics (``draft-*``) follow from
    the input bytes and the grader version, which are compared already.
    """
    changed = [k for k in sorted(new) if k != "rubrics" and old.get(k) != new.get(k)]
    for rid, digest in sorted(old.get("rubrics", {}).items()):
        if not rid.startswith("draft-") and rubric_hashes.get(rid) != digest:
            changed.append(f"rubric {rid}" if rid in rubric_hashes else f"rubric {rid} (no longer loaded)")
    return changed

