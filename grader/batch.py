"""Batch grading: a DataFrame of answers in, a DataFrame of results out, and a resumable file job.

``grade_batch`` is the one function the CLI, the API jobs and a Ray Data pipeline call
(``dataset.map_batches(GradeBatch, fn_constructor_args=(settings,), batch_format="pandas")``):
every answer of the frame goes to one ``Grader.grade_many`` call, identical (rubric, answer)
pairs are graded once, and a row that cannot be graded comes back as ``status=error`` with a
message, in its place. ``run_batch`` streams a file through it chunk by chunk and commits each
chunk in the store, so a killed run resumes where its last commit ended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from . import __version__
from .draft import draft_rubric
from .errors import AnswerError, GraderError, RubricError, UnknownRubric
from .files import OUTPUT_COLUMNS, AnswerFile, content_identity, open_writer
from .grade import Grader, clean_answer
from .jobs import ChunkTally, JobLedger, ResumeMismatch, fingerprint_changes, job_id_for
from .rubric import Rubric
from .settings import Settings

DEFAULT_CHUNK_ROWS = 512  # big enough that one encode call amortises its overhead, small enough to commit often


def is_given(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _as_answer(value: object) -> str | bytes | object:
    """Strings carrying undecodable bytes (read with surrogateescape) go back to bytes, so the
    grader reports them as not UTF-8 exactly as it does for the API and CLI."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _printable(value: object) -> str:
    """A value for the output file: undecodable input bytes become U+FFFD."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def rubric_for_row(row: dict, rubrics: dict[str, Rubric], drafts: MutableMapping[str, Rubric], max_chars: int) -> Rubric:
    rubric_id = row.get("rubric_id")
    if is_given(rubric_id):
        rubric = rubrics.get(str(rubric_id)) or drafts.get(str(rubric_id))
        if rubric is None:
            raise UnknownRubric(
                f"unknown rubric {str(rubric_id)!r} (not among the {len(rubrics)} loaded rubrics); "
                "fix the rubric_id or give question + reference columns instead",
                field="rubric_id",
            )
        return rubric
    question, reference = row.get("question"), row.get("reference")
    if not (is_given(question) and is_given(reference)):
        raise RubricError(
            "row has no rubric_id, and no question + reference to draft a rubric from", field="rubric_id"
        )
    key = f"{question}\n\x00{reference}"
    if key not in drafts:
        try:
            drafts[key] = draft_rubric(str(question), clean_answer(_as_answer(reference), max_chars))
        except GraderError as err:
            raise RubricError(f"reference: {err.message}", field="reference") from None
        drafts[drafts[key].id] = drafts[key]
    return drafts[key]


def rubrics_for_rows(
    rows: list[dict], rubrics: dict[str, Rubric], drafts: MutableMapping[str, Rubric], max_chars: int
) -> list[Rubric | GraderError]:
    """Each row's rubric (stored, or drafted from its reference into ``drafts``), or why the row cannot be graded."""
    chosen: list[Rubric | GraderError] = []
    for row in rows:
        try:
            if is_given(row.get("read_error")):
                raise GraderError(str(row["read_error"]))
            if not is_given(row.get("answer")):
                raise AnswerError("row has no answer (the 'answer' value is missing)", field="answer")
            chosen.append(rubric_for_row(row, rubrics, drafts, max_chars))
        except GraderError as err:
            chosen.append(err)
    return chosen


def grade_batch(
    frame: pd.DataFrame,
    grader: Grader,
    rubrics: dict[str, Rubric],
    drafts: MutableMapping[str, Rubric] | None = None,
) -> pd.DataFrame:
    """Grade every row of ``frame`` (``answer`` and ``rubric_id`` or ``question`` + ``reference``).

    Returns one row per input row, in order, with the output columns of DESIGN.md. ``drafts``
    caches rubrics drafted from references (keyed by question + reference and by draft id) so a
    caller streaming many frames drafts each reference once.
    """
    drafts = {} if drafts is None else drafts
    rows = frame.to_dict("records")
    chosen = rubrics_for_rows(rows, rubrics, drafts, grader.settings.max_answer_chars)

    # One grade_many call per frame; identical (rubric, answer) pairs share one grade.
    slot: dict[tuple[str, object], int] = {}
    items: list[tuple[Rubric, str | bytes]] = []
    where: list[int | None] = []
    for row, rubric in zip(rows, chosen):
        if isinstance(rubric, GraderError):
            where.append(None)
            continue
        answer = _as_answer(row["answer"])
        key = (rubric.content_hash, answer if isinstance(answer, (str, bytes)) else repr(answer))
        if key not in slot:
            slot[key] = len(items)
            items.append((rubric, answer))
        where.append(slot[key])
    graded = grader.grade_many(items)

    out: dict[str, list] = {name: [] for name in OUTPUT_COLUMNS}
    for i, (row, rubric, at) in enumerate(zip(rows, chosen, where)):
        result = rubric if at is None else graded[at]
        out["id"].append(_printable(row["id"]) if is_given(row.get("id")) else str(row.get("row") or i + 1))
        out["rubric_id"].append(
            rubric.id if isinstance(rubric, Rubric) else (_printable(row["rubric_id"]) if is_given(row.get("rubric_id")) else None)
        )
        if isinstance(result, GraderError):
            out["score"].append(None), out["max_score"].append(None), out["coverage"].append(None)
            out["missing"].append([]), out["flags"].append([]), out["needs_review"].append(None)
            out["status"].append("error"), out["error"].append(result.message)
        else:
            out["score"].append(result.score), out["max_score"].append(result.max_score)
            out["coverage"].append(result.coverage), out["missing"].append(result.missing)
            out["flags"].append(result.flags), out["needs_review"].append(result.needs_review)
            out["status"].append("ok"), out["error"].append(None)
    return pd.DataFrame(out, columns=list(OUTPUT_COLUMNS))


class GradeBatch:
    """A stateful callable for Ray Data ``map_batches``: loads the model once per worker."""

    def __init__(self, settings: Settings, rubrics: dict[str, Rubric]) -> None:
        self.grader = Grader(settings)
        self.rubrics = rubrics
        self.drafts: dict[str, Rubric] = {}

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        return grade_batch(frame, self.grader, self.rubrics, self.drafts)


# -- a file as a resumable job ---------------------------------------------------------------------


@dataclass
class BatchSummary:
    job_id: str
    output: Path
    rows: int
    graded: int
    errors: int
    mean_scores: dict[str, float]
    resumed_from: int = 0
    seconds: float = 0.0
    drafted: list[str] = field(default_factory=list)
    finished: bool = True

    def describe(self) -> str:
        """The end-of-run summary a person reads: counts, mean score per rubric, where the output is."""
        resumed = f", resumed after row {self.resumed_from}" if self.resumed_from else ""
        lines = [f"{self.rows} rows: {self.graded} graded, {self.errors} errors{resumed} -> {self.output}"]
        lines += [f"  {rubric_id}: mean score {mean}" for rubric_id, mean in self.mean_scores.items()]
        if self.drafted:
            lines.append(f"{len(self.drafted)} rubric(s) drafted from reference answers, for review: {drafts_dir(self.output)}/")
        return "\n".join(lines)


def batch_fingerprint(grader: Grader) -> dict:
    """What a resumed run must share with the run it continues; rubric hashes are added per chunk."""
    return {
        "model": grader.encoder.name,
        "model_hash": grader.encoder.weights_hash,
        "thresholds": grader.settings.thresholds.model_dump(),
        "max_answer_chars": grader.settings.max_answer_chars,
        "calibration": grader.calibration,
        # Only when set, so a job started before review calibrations existed still resumes.
        **({"review_calibrations": grader.reviews.names()} if grader.reviews else {}),
        "grader_version": __version__,
        "rubrics": {},
    }


def drafts_dir(output: Path) -> Path:
    """Where rubrics drafted from reference answers are written for a person to review."""
    return output.with_name(output.name + ".rubrics")


def tally_of(frame: pd.DataFrame) -> ChunkTally:
    ok = frame[frame["status"] == "ok"]
    sums = ok.groupby("rubric_id")["score"].agg(["count", "sum"])
    return ChunkTally(
        graded=len(ok),
        errors=len(frame) - len(ok),
        score_sums={str(rid): [int(r["count"]), float(r["sum"])] for rid, r in sums.iterrows()},
    )


@contextmanager
def console_progress(enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress bar on stderr (rows, rows/s, ETA) for ``run_batch``'s ``on_progress``; None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TextColumn("rows  {task.fields[rate]} rows/s"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("batch", total=None, rate="-")

        def update(done: int, total: int | None) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, total=total, rate=f"{speed:.0f}" if speed else "-")

        yield update


def run_batch(
    input_path: str | Path,
    output: Path,
    grader: Grader,
    rubrics: dict[str, Rubric],
    ledger: JobLedger,
    *,
    resume: bool = False,
    job_id: str | None = None,
    source: str = "cli",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stdin: BinaryIO | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BatchSummary:
    """Grade ``input_path`` into ``output`` chunk by chunk, committing each chunk in the store.

    With ``resume``, a job interrupted earlier (same input bytes, same output, same fingerprint)
    continues after its last committed chunk; whatever it wrote after that is cut off first.
    ``should_stop`` is polled between chunks (the API's shutdown); the job stays resumable.
    """
    started = time.perf_counter()
    source_file = AnswerFile(input_path, stdin=stdin)
    output = Path(output)
    if resume and source_file.path == "-":
        raise GraderError("--resume needs an input file; stdin cannot be read twice", field="input")
    identity = None if source_file.path == "-" else content_identity(source_file.path)
    job_id = job_id or job_id_for(source_file.path, identity, output)
    fingerprint = batch_fingerprint(grader)
    job = ledger.get(job_id) if resume else None
    changes = [] if job is None or job.rows_done == 0 else fingerprint_changes(
        job.fingerprint, fingerprint, {rid: r.content_hash for rid, r in rubrics.items()}
    )
    if changes:
        raise ResumeMismatch(
            f"cannot resume job {job_id}: {', '.join(changes[:8])} changed since it started; "
            "run again without --resume to grade the whole file with the current settings",
        )
    if job is not None and job.rows_done > 0 and job.input_identity != identity:
        raise ResumeMismatch(f"cannot resume job {job_id}: the input file changed since it started; run without --resume")
    if job is not None and job.state == "done":
        if output.exists():
            tally = ledger.tally(job_id)
            return BatchSummary(job_id, output, job.rows_done, tally.graded, tally.errors, tally.mean_scores, job.rows_done)
        job = None  # finished, but its output was removed since: grade again
    if job is None or job.rows_done == 0:
        job = ledger.start(
            job_id,
            input_path=source_file.path,
            output_path=str(output),
            input_identity=identity,
            fingerprint=fingerprint,
            rows_total=source_file.count_rows(),
            source=source,
        )
    else:
        ledger.set_state(job_id, "running")

    resumed_from, index, done = job.rows_done, job.chunks_done, job.rows_done
    writer = open_writer(output, job.output_position)
    drafts: dict[str, Rubric] = {}
    written: set[str] = set()
    if on_progress:
        on_progress(done, job.rows_total)
    for chunk in source_file.chunks(chunk_rows, skip=done):
        if should_stop and should_stop():
            return BatchSummary(job_id, output, done, 0, 0, {}, resumed_from, finished=False)
        results = grade_batch(chunk, grader, rubrics, drafts)
        write_drafts(output, drafts, written)
        position = writer.write(results)
        done += len(chunk)
        known = {**drafts, **rubrics}
        used = {rid: known[rid].content_hash for rid in set(results["rubric_id"]) if rid in known}
        ledger.commit_chunk(job_id, index, done, position, tally_of(results), used)
        index += 1
        if on_progress:
            on_progress(done, job.rows_total)
    writer.finish()
    ledger.set_state(job_id, "done", rows_total=done)
    tally = ledger.tally(job_id)
    return BatchSummary(
        job_id,
        output,
        done,
        tally.graded,
        tally.errors,
        tally.mean_scores,
        resumed_from,
        time.perf_counter() - started,
        sorted(written),
    )


def write_drafts(output: Path, drafts: dict[str, Rubric], written: set[str]) -> None:
    """Write newly drafted rubrics as YAML beside the output, before their chunk is committed."""
    new = {r.id: r for r in drafts.values() if r.id not in written}
    if not new:
        return
    folder = drafts_dir(output)
    folder.mkdir(parents=True, exist_ok=True)
    for rid, rubric in new.items():
        (folder / f"{rid}.yaml").write_text(rubric.to_yaml(), encoding="utf-8")
        written.add(rid)
