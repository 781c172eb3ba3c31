"""The store: rubric versions, graded results with fingerprints, and batch jobs, via SQLAlchemy.

SQLite (WAL) is the embedded default; PostgreSQL (``postgresql+psycopg://...``, the ``postgres``
extra) works through the same code, so several server processes can share one store. The schema
is owned by Alembic migrations (``grader/migrations``), applied when a store is opened.
Rubric versions are append-only, so a stored grade can always be reproduced with the rubric it used.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np
from sqlalchemy import (
    JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, TypeDecorator, and_,
    create_engine, event, exists, func, or_, select, text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from .errors import GraderError, UnknownResult, UnknownRubric
from .result import GradeResult
from .review import Review, ReviewedResult, ReviewInput, check_review, decode_cursor, encode_cursor
from .rubric import Rubric, parse_rubric

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A time stored and read back as aware UTC on every backend: SQLite returns the naive UTC time it was
    given, PostgreSQL an aware one, so the same row would serialise with or without "+00:00"."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class RubricVersionRow(Base):
    __tablename__ = "rubric_versions"

    rubric_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict] = mapped_column(JSON)
    deleted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ResultRow(Base):
    __tablename__ = "results"
    __table_args__ = (Index("ix_results_review_queue", "needs_review", "confidence", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    rubric_id: Mapped[str] = mapped_column(String(80), index=True)
    rubric_version: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text)
    body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    # Copied out of ``body`` so the review queue can filter and order in SQL.
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    flags: Mapped[str] = mapped_column(Text, default="", doc="'|a|b|': each flag between bars, for LIKE '%|a|%'")


MAX_REVIEWER_CHARS = 80  # an API key's name (grader.settings.KEY_NAME) or a CLI user name


class ReviewRow(Base):
    """A person's review of a stored result; rows are only ever added (the latest per result counts)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    result_id: Mapped[str] = mapped_column(String(36), ForeignKey("results.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    key_points: Mapped[dict] = mapped_column(JSON, default=dict)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewer: Mapped[str] = mapped_column(String(MAX_REVIEWER_CHARS))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)

    def to_review(self) -> Review:
        return Review(
            score=self.score, key_points=self.key_points or {}, comment=self.comment, reviewer=self.reviewer,
            created_at=self.created_at,
        )


def flags_column(flags: list[str]) -> str:
    return "|" + "|".join(flags) + "|" if flags else ""


class EmbeddingRow(Base):
    """Key-point embeddings of one rubric version under one model (key: weights hash + rubric hash)."""

    __tablename__ = "embeddings"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    vectors: Mapped[bytes] = mapped_column(LargeBinary, doc="float32, row-major")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so readers and one writer coexist."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised by every SQLite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as err:  # e.g. psycopg for postgresql+psycopg://
        raise GraderError(
            f"the database driver for {url.split('://')[0]!r} is not installed ({err.name}); "
            'for PostgreSQL: pip install ".[postgres]"',
            field="database_url",
        ) from None


MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 7_305_118  # pg_advisory_lock key: one process migrates at a time, the others wait
_migrating = threading.Lock()  # Alembic's context is a module global: one migration per process at a time


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic upgrade); a store already there is untouched.

    On PostgreSQL an advisory lock serialises processes that start together (``serve --workers``).
    """
    from alembic import command

    with _migrating, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(_alembic_config(conn), revision)


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the store is at (None: not migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _retry_conflicts(write: Callable[..., T], *args: object, attempts: int = 20) -> T:
    """Run a read-then-write transaction again when a concurrent writer got there first.

    Two writers racing for the same next version collide on the primary key (PostgreSQL), or the
    later one finds its SQLite snapshot stale ("database is locked"); the loser reads the new
    latest and decides again, so no version is lost or written twice.
    """
    for attempt in range(attempts):
        try:
            return write(*args)
        except (IntegrityError, OperationalError) as err:
            conflict = isinstance(err, IntegrityError) or "locked" in str(err.orig)
            if not conflict or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


class Store:
    """Typed access to the tables; every method is one short transaction."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.engine = make_engine(url)
        if upgrade:
            migrate(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    # -- rubrics -------------------------------------------------------------------------------
    def put_rubric(self, rubric: Rubric) -> Rubric:
        """Store ``rubric`` as a new version unless its content equals the latest; returns what is stored."""
        return _retry_conflicts(self._put_rubric, rubric)

    def _put_rubric(self, rubric: Rubric) -> Rubric:
        with self.session.begin() as s:
            latest = self._latest_row(s, rubric.id)
            body = rubric.model_dump(mode="json", exclude={"version"})
            if latest is not None and not latest.deleted and latest.body == body:
                return parse_rubric({**latest.body, "version": latest.version})
            version = latest.version + 1 if latest is not None else rubric.version
            stored = parse_rubric({**body, "version": version})
            s.add(RubricVersionRow(rubric_id=rubric.id, version=version, content_hash=stored.content_hash, body=body))
            return stored

    def seed_rubrics(self, rubrics: dict[str, Rubric]) -> int:
        """Add shipped rubrics that the store does not know yet (first start); returns how many."""
        with self.session() as s:
            known = set(s.scalars(select(RubricVersionRow.rubric_id).distinct()))
        new = [r for rid, r in rubrics.items() if rid not in known]
        for rubric in new:
            self.put_rubric(rubric)
        return len(new)

    def get_rubric(self, rubric_id: str, version: int | None = None) -> Rubric:
        with self.session() as s:
            if version is None:
                row = self._latest_row(s, rubric_id)
            else:
                row = s.get(RubricVersionRow, (rubric_id, version))
        if row is None or (version is None and row.deleted):
            suffix = f" version {version}" if version is not None else ""
            raise UnknownRubric(f"unknown rubric {rubric_id!r}{suffix}", field="rubric_id")
        return parse_rubric({**row.body, "version": row.version})

    def list_rubrics(self) -> list[Rubric]:
        with self.session() as s:
            ids = sorted(set(s.scalars(select(RubricVersionRow.rubric_id))))
            rows = [self._latest_row(s, rid) for rid in ids]
        return [parse_rubric({**r.body, "version": r.version}) for r in rows if r is not None and not r.deleted]

    def rubric_versions(self, rubric_id: str) -> list[int]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(RubricVersionRow.version)
                    .where(RubricVersionRow.rubric_id == rubric_id, RubricVersionRow.deleted.is_(False))
                    .order_by(RubricVersionRow.version)
                )
            )

    def delete_rubric(self, rubric_id: str) -> None:
        """Hide a rubric from listings and new grades; its versions stay readable for old results."""
        _retry_conflicts(self._delete_rubric, rubric_id)

    def _delete_rubric(self, rubric_id: str) -> None:
        with self.session.begin() as s:
            row = self._latest_row(s, rubric_id)
            if row is None or row.deleted:
                raise UnknownRubric(f"unknown rubric {rubric_id!r}", field="rubric_id")
            s.add(
                RubricVersionRow(
                    rubric_id=rubric_id, version=row.version + 1, content_hash=row.content_hash, body=row.body, deleted=True
                )
            )

    @staticmethod
    def _latest_row(s: Session, rubric_id: str) -> RubricVersionRow | None:
        """The newest version row, deletion markers included."""
        return s.scalars(
            select(RubricVersionRow)
            .where(RubricVersionRow.rubric_id == rubric_id)
            .order_by(RubricVersionRow.version.desc())
            .limit(1)
        ).first()

    # -- results -------------------------------------------------------------------------------
    def save_results(self, answers: list[str], results: list[GradeResult]) -> list[str]:
        """Store graded results (with their fingerprints); returns their ids in order.

        NUL characters are dropped from the answers: PostgreSQL text cannot hold them, and grading ignored them
        (``grader.grade.clean_answer`` drops control characters), so nothing the grader read is lost.
        """
        rows = [
            ResultRow(
                rubric_id=r.rubric_id,
                rubric_version=r.fingerprint.rubric_version,
                answer=a.replace("\x00", ""),
                body=json.loads(r.model_dump_json()),
                needs_review=r.needs_review,
                confidence=r.confidence,
                flags=flags_column(r.flags),
            )
            for a, r in zip(answers, results)
        ]
        with self.session.begin() as s:
            s.add_all(rows)
        return [row.id for row in rows]

    def get_result(self, result_id: str) -> tuple[str, GradeResult] | None:
        with self.session() as s:
            row = s.get(ResultRow, result_id)
        return None if row is None else (row.answer, GradeResult.model_validate(row.body))

    # -- reviews ---------------------------------------------------------------------------------
    def add_review(self, result_id: str, review: ReviewInput, reviewer: str) -> Review:
        """Store a review beside the result (checked against it); the result itself is never changed."""
        return _retry_conflicts(self._add_review, result_id, review, reviewer)

    def _add_review(self, result_id: str, review: ReviewInput, reviewer: str) -> Review:
        if not 0 < len(reviewer) <= MAX_REVIEWER_CHARS:
            raise GraderError(f"a reviewer name has 1 to {MAX_REVIEWER_CHARS} characters, got {len(reviewer)}", field="reviewer")
        if not reviewer.isprintable():  # a control character hides part of the name (and NUL fails on PostgreSQL)
            raise GraderError(
                f"reviewer name {reviewer!r} has a control character; use letters, digits and punctuation", field="reviewer"
            )
        with self.session.begin() as s:
            row = s.get(ResultRow, result_id)
            if row is None:
                raise UnknownResult(f"no stored result with id {result_id!r}; ids come from POST /v1/grade", field="result_id")
            check_review(review, GradeResult.model_validate(row.body))
            stored = ReviewRow(
                result_id=result_id, score=review.score, key_points=dict(review.key_points), comment=review.comment,
                reviewer=reviewer,
            )
            s.add(stored)
        return stored.to_review()

    def reviews_of(self, result_id: str) -> list[Review]:
        """Every review of a result, oldest first (the last one counts)."""
        with self.session() as s:
            rows = s.scalars(select(ReviewRow).where(ReviewRow.result_id == result_id).order_by(ReviewRow.id))
            return [r.to_review() for r in rows]

    def latest_review(self, result_id: str) -> Review | None:
        reviews = self.reviews_of(result_id)
        return reviews[-1] if reviews else None

    def review_queue(
        self, rubric_id: str | None = None, flag: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[ReviewedResult], str | None]:
        """Unreviewed results that need review, least confident first; a page and the cursor of the next one."""
        query = self._unreviewed(rubric_id, flag).order_by(ResultRow.confidence, ResultRow.id)
        if cursor:
            confidence, last_id = decode_cursor(cursor)
            query = query.where(
                or_(ResultRow.confidence > confidence, and_(ResultRow.confidence == confidence, ResultRow.id > last_id))
            )
        with self.session() as s:
            rows = list(s.scalars(query.limit(limit + 1)))
        page = [ReviewedResult.of(r.id, r.answer, GradeResult.model_validate(r.body)) for r in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(rows[limit - 1].confidence, rows[limit - 1].id) if more else None

    def unreviewed(self, rubric_id: str | None = None, flag: str | None = None) -> list[ReviewedResult]:
        """Every unreviewed result that needs review (for picking and export), oldest first."""
        with self.session() as s:
            rows = list(s.scalars(self._unreviewed(rubric_id, flag).order_by(ResultRow.created_at, ResultRow.id)))
        return [ReviewedResult.of(r.id, r.answer, GradeResult.model_validate(r.body)) for r in rows]

    @staticmethod
    def _unreviewed(rubric_id: str | None, flag: str | None):
        query = select(ResultRow).where(
            ResultRow.needs_review.is_(True), ~exists().where(ReviewRow.result_id == ResultRow.id)
        )
        if rubric_id is not None:
            query = query.where(ResultRow.rubric_id == rubric_id)
        if flag is not None:
            query = query.where(ResultRow.flags.contains(f"|{flag}|", autoescape=True))
        return query

    def results_with_reviews(self, rubric_id: str | None = None, reviewed_only: bool = True) -> list[ReviewedResult]:
        """Stored results with their latest review, oldest first: every result, or only the reviewed ones."""
        latest = select(func.max(ReviewRow.id).label("id")).group_by(ReviewRow.result_id).subquery()
        query = (
            select(ResultRow, ReviewRow)
            .outerjoin(ReviewRow, and_(ReviewRow.result_id == ResultRow.id, ReviewRow.id.in_(select(latest.c.id))))
            .order_by(ResultRow.created_at, ResultRow.id)
        )
        if rubric_id is not None:
            query = query.where(ResultRow.rubric_id == rubric_id)
        if reviewed_only:
            query = query.where(ReviewRow.id.is_not(None))
        with self.session() as s:
            pairs = [tuple(row) for row in s.execute(query)]
        return [
            ReviewedResult.of(r.id, r.answer, GradeResult.model_validate(r.body), v.to_review() if v else None)
            for r, v in pairs
        ]

    # -- key-point embeddings (grader.encoder.VectorStore) ----------------------------------------
    def load_embeddings(self, key: str) -> np.ndarray | None:
        with self.session() as s:
            row = s.get(EmbeddingRow, key)
        return None if row is None else np.frombuffer(row.vectors, dtype=np.float32).reshape(row.rows, row.dim).copy()

    def save_embeddings(self, key: str, embeddings: np.ndarray) -> None:
        """Keep them for every worker; a concurrent save of the same key is the same data, so it may lose."""
        matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
        try:
            with self.session.begin() as s:
                s.add(EmbeddingRow(key=key, rows=matrix.shape[0], dim=matrix.shape[1], vectors=matrix.tobytes()))
        except IntegrityError:
            pass

    def ping(self) -> bool:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(RubricVersionRow)) is not None
