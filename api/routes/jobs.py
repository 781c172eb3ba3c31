"""Batch jobs over HTTP: upload a file (or rows), poll its state, download the results.

A job is the CLI's ``grader batch`` run by a background thread with the same ``run_batch``; its
state lives in the store and its files under ``GRADER_JOBS_DIR``, so a job a restart interrupted
resumes from its last committed chunk when the server starts again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from sqlalchemy.engine import make_url
from starlette.datastructures import UploadFile

from grader.batch import run_batch
from grader.errors import GraderError, InputFileError
from grader.files import FORMATS, AnswerFile
from grader.jobs import Job, JobLedger, LeaseLost, ResumeMismatch
from grader.settings import Settings

from ..deps import Services, ServicesDep
from ..schemas import ErrorResponse

log = logging.getLogger(__name__)

# Smaller than the CLI's chunks: a job shares the model with interactive requests, and one chunk
# holds the encoder for its whole encode call.
JOB_CHUNK_ROWS = 128
POLL_SECONDS = 1.0  # how often an idle worker looks for jobs queued by other workers
MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
Format = Literal["csv", "jsonl", "parquet"]


class UnknownJob(GraderError):
    status_code = 404


class JobNotFinished(GraderError):
    status_code = 409


class JobRows(BaseModel):
    """Rows to grade, each with ``answer`` and ``rubric_id`` (or ``question`` + ``reference``)."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] = Field(min_length=1, description="objects with answer, id, rubric_id / question + reference")
    format: Format = Field("jsonl", description="format of the results file")


class JobStatus(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    rows_done: int
    rows_total: int | None
    error: str | None = Field(None, description="why the job failed; row errors are in the results instead")
    created_at: datetime
    updated_at: datetime
    results_url: str | None = Field(None, description="where to download the results once the job is done")

    @classmethod
    def of(cls, job: Job) -> "JobStatus":
        url = f"/v1/jobs/{job.id}/results" if job.state == "done" else None
        fields = {name: getattr(job, name) for name in ("id", "state", "rows_done", "rows_total", "error")}
        return cls(**fields, created_at=job.created_at, updated_at=job.updated_at, results_url=url)


class JobRunner:
    """A background thread that claims queued (or orphaned) jobs from the store and runs them.

    Jobs are not handed to a process: every server worker claims from the shared store (one
    conditional UPDATE, see ``JobLedger.claim``), so with ``--workers N`` each job runs exactly once,
    and a job whose worker died is resumed by another after ``GRADER_JOB_LEASE_SECONDS``.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ledger = JobLedger(services.store, owner=self.owner)
        self.lease = services.settings.job_lease_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="batch-jobs", daemon=True)

    def start(self) -> "JobRunner":
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the current chunk and stop; an unfinished job is released, so a restart resumes it."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def wake(self) -> None:
        """A new job is queued in the store: look now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.ledger.claim("api", self.lease)
            except Exception:  # the store is down for a moment: try again at the next poll
                log.exception("claiming a batch job failed")
                job = None
            if job is None:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        lost = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(job.id, lost), name="batch-job-lease", daemon=True)
        renewer.start()
        try:
            self._grade(job, should_stop=lambda: self._stop.is_set() or lost.is_set())
        finally:
            lost.set()  # ends the renewer
            renewer.join()
            self.ledger.release(job.id)

    def _renew(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(self.lease / 3):
            try:
                if not self.ledger.renew(job_id, self.lease):
                    log.warning("batch job %s was taken over by another worker", job_id)
                    done.set()
            except Exception:
                log.exception("renewing the lease of batch job %s failed", job_id)

    def _grade(self, job: Job, should_stop: Callable[[], bool]) -> None:
        job_id = job.id
        rubrics = {r.id: r for r in self.services.store.list_rubrics()}
        args = (job.input_path, FilePath(job.output_path), self.services.grader, rubrics, self.ledger)
        options = dict(job_id=job_id, source="api", chunk_rows=JOB_CHUNK_ROWS, should_stop=should_stop)
        try:
            try:
                run_batch(*args, resume=True, **options)
            except ResumeMismatch:  # rubrics or model changed across the restart: regrade it all alike
                run_batch(*args, resume=False, **options)
        except LeaseLost:
            log.warning("batch job %s: stopped, another worker owns it now", job_id)
        except GraderError as err:
            self.ledger.set_state(job_id, "failed", err.message)
        except Exception:
            log.exception("batch job %s failed", job_id)
            self.ledger.set_state(job_id, "failed", "internal error while grading this job; see the server log")


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Runs inside the app's lifespan (FastAPI merges router lifespans), after services exist."""
    runner = await run_in_threadpool(lambda: JobRunner(app.state.services).start())
    app.state.job_runner = runner
    try:
        yield
    finally:
        await run_in_threadpool(runner.stop)


router = APIRouter(prefix="/v1/jobs", tags=["jobs"], lifespan=lifespan)
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no job with this id"}}
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the id POST /v1/jobs returned")]


def _runner(request: Request) -> JobRunner:
    return request.app.state.job_runner


def _api_job(runner: JobRunner, job_id: str) -> Job:
    job = runner.ledger.get(job_id)
    if job is None or job.source != "api":
        raise UnknownJob(f"no batch job with id {job_id!r}; ids come from POST /v1/jobs", field="job_id")
    return job


def _save_upload(upload: UploadFile, folder: FilePath) -> FilePath:
    suffix = FilePath(upload.filename or "").suffix.lower()
    if suffix not in FORMATS:
        raise InputFileError(
            f"uploaded file {upload.filename!r} must end in .csv, .jsonl (or .ndjson) or .parquet", field="file"
        )
    path = folder / f"input{suffix}"
    upload.file.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    return path


def _save_rows(body: object, folder: FilePath) -> tuple[FilePath, str]:
    try:
        rows = JobRows.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise GraderError(f"{where}: {first['msg']}; send {{\"rows\": [{{\"answer\": ..., \"rubric_id\": ...}}]}}", field=where) from None
    path = folder / "input.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.rows)
    return path, rows.format


def jobs_root(settings: Settings) -> FilePath:
    """``GRADER_JOBS_DIR``, else ``<database>.jobs/`` beside a SQLite file, else ``./grader-jobs``."""
    if settings.jobs_dir is not None:
        return FilePath(settings.jobs_dir).resolve()
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return FilePath(url.database).resolve().with_suffix(".jobs")
    return FilePath("grader-jobs").resolve()


def _create(runner: JobRunner, form_file: UploadFile | None, body: object, fmt: Format | None) -> Job:
    job_id = uuid.uuid4().hex
    folder = jobs_root(runner.services.settings) / job_id
    folder.mkdir(parents=True)
    try:
        if form_file is not None:
            source = _save_upload(form_file, folder)
            fmt = fmt or AnswerFile(source).format
        else:
            source, body_fmt = _save_rows(body, folder)
            fmt = fmt or body_fmt
        rows_total = AnswerFile(source).count_rows()  # also checks the file is readable and has 'answer'
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job = runner.ledger.start(
        job_id,
        input_path=str(source),
        output_path=str(folder / f"results.{fmt}"),
        input_identity=None,
        fingerprint={},
        rows_total=rows_total,
        source="api",
        state="queued",
    )
    runner.wake()
    return job


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": ".csv, .jsonl or .parquet"}},
                }
            },
            "application/json": {"schema": JobRows.model_json_schema()},
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=JobStatus,
    openapi_extra=UPLOAD_BODY,
    responses={422: {"model": ErrorResponse, "description": "unreadable file, no 'answer' column, or bad rows body"}},
    summary="Start a batch job from an uploaded file or JSON rows",
)
async def create_job(
    request: Request,
    services: ServicesDep,
    format: Annotated[Format | None, Query(description="results format; default: the input's (jsonl for rows)")] = None,
) -> JobStatus:
    """Grade every row in the background; poll ``GET /v1/jobs/{id}`` and download ``/results``."""
    runner = _runner(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InputFileError("multipart upload needs a 'file' part holding the answers file", field="file")
            job = await run_in_threadpool(_create, runner, upload, None, format)
    elif content_type.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise GraderError("request body is not valid JSON; send {\"rows\": [...]}") from None
        job = await run_in_threadpool(_create, runner, None, body, format)
    else:
        raise InputFileError(
            "send the answers as multipart/form-data with a 'file' part, or as application/json {\"rows\": [...]}",
            field="content-type",
        )
    return JobStatus.of(job)


@router.get("/{job_id}", response_model=JobStatus, responses=NOT_FOUND, summary="State and progress of a job")
async def get_job(job_id: JobId, request: Request) -> JobStatus:
    return JobStatus.of(await run_in_threadpool(_api_job, _runner(request), job_id))


@router.get(
    "/{job_id}/results",
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "the job has not finished"}},
    response_class=FileResponse,
    summary="Download a finished job's results file",
)
async def get_job_results(job_id: JobId, request: Request) -> FileResponse:
    job = await run_in_threadpool(_api_job, _runner(request), job_id)
    if job.state != "done":
        done = f"{job.rows_done}/{job.rows_total if job.rows_total is not None else '?'} rows"
        hint = f": {job.error}" if job.state == "failed" else "; try again when its state is done"
        raise JobNotFinished(f"job {job_id} is {job.state} ({done}){hint}", field="job_id")
    fmt = FilePath(job.output_path).suffix.lstrip(".")
    return FileResponse(job.output_path, media_type=MEDIA_TYPES[fmt], filename=f"{job_id}-results.{fmt}")
