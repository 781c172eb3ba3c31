"""The ``grader`` command line: a thin Typer shell over the library.

Input errors (``GraderError``) become a one-line message on stderr and exit code 2, in one place
(``_Group.invoke``), never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from .errors import GraderError
from .settings import Settings, get_settings


class _Group(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GraderError as err:
            typer.echo(f"error: {err.message}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, help="Grade free-text answers against rubrics.")
rubric_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Check and draft rubrics.")
app.add_typer(rubric_app, name="rubric")

RubricsDir = Annotated[Optional[Path], typer.Option("--rubrics", help="rubrics directory (default: GRADER_RUBRICS_DIR)")]


def _settings(rubrics: Path | None = None) -> Settings:
    settings = get_settings()
    return settings.model_copy(update={"rubrics_dir": rubrics}) if rubrics else settings


def _grader(settings: Settings):
    from .grade import Grader

    return Grader(settings)


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@app.command()
def grade(
    rubric: Annotated[str, typer.Argument(help="a rubric id in the rubrics directory, or a path to a YAML file")],
    answer: Annotated[str, typer.Argument(help="the answer text, or - to read it from stdin")],
    rubrics: RubricsDir = None,
) -> None:
    """Grade one answer and print the result as JSON."""
    from .rubric import resolve_rubric

    settings = _settings(rubrics)
    chosen = resolve_rubric(rubric, settings.rubrics_dir)
    text: str | bytes = sys.stdin.buffer.read() if answer == "-" else answer
    result = _grader(settings).grade(chosen, text)
    _print_json(result.model_dump(mode="json"))


@rubric_app.command("check")
def rubric_check(
    path: Annotated[Optional[Path], typer.Argument(help="a rubric file or directory (default: the rubrics dir)")] = None,
) -> None:
    """Validate rubrics and report key points that overlap or restate the question."""
    from .check import check_rubrics
    from .encoder import load_encoder
    from .rubric import load_rubric, load_rubrics

    settings = get_settings()
    target = path or settings.rubrics_dir
    rubrics = list(load_rubrics(target).values()) if target.is_dir() else [load_rubric(target)]
    warnings = check_rubrics(rubrics, load_encoder(settings.model_path, settings.encode_batch_size))
    for warning in warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"{len(rubrics)} rubric(s) valid, {len(warnings)} warning(s)")


@rubric_app.command("draft")
def rubric_draft(
    question: Annotated[str, typer.Option("--question", "-q", help="the question text")],
    reference: Annotated[str, typer.Option("--reference", "-r", help="a reference answer, or - for stdin")],
    rubric_id: Annotated[Optional[str], typer.Option("--id", help="rubric id (lowercase-dashed)")] = None,
    max_score: Annotated[float, typer.Option(help="points for a complete answer")] = 5.0,
) -> None:
    """Print a draft rubric (YAML) whose key points come from the reference answer."""
    from .draft import draft_rubric
    from .grade import clean_answer

    text = clean_answer(sys.stdin.buffer.read() if reference == "-" else reference, get_settings().max_answer_chars)
    typer.echo(draft_rubric(question, text, rubric_id, max_score).to_yaml(), nl=False)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="bind address (default: GRADER_HOST, 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default: GRADER_PORT, 8000)")] = None,
) -> None:
    """Run the HTTP API (see api/)."""
    raise GraderError("serve is not implemented yet")  # owned by the API work (issue 5)


@contextmanager
def _batch_progress(enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A rich progress bar (rows, rows/s, ETA) on stderr, or nothing when not on a terminal."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("grading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows  {task.fields[rate]} rows/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("batch", total=None, rate="-")

        def update(done: int, total: int | None) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, total=total, rate=f"{speed:.0f}" if speed else "-")

        yield update


def _print_batch_summary(summary) -> None:
    resumed = f", resumed after row {summary.resumed_from}" if summary.resumed_from else ""
    typer.echo(f"{summary.rows} rows: {summary.graded} graded, {summary.errors} errors{resumed} -> {summary.output}")
    for rubric_id, mean in summary.mean_scores.items():
        typer.echo(f"  {rubric_id}: mean score {mean}")
    if summary.drafted:
        typer.echo(f"{len(summary.drafted)} rubric(s) drafted from reference answers, for review: {summary.output}.rubrics/")


@app.command()
def batch(
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="answers: .csv, .jsonl or .parquet; - for JSONL on stdin")],
    out: Annotated[Path, typer.Option("--out", "-o", help="results file: .csv, .jsonl or .parquet")],
    rubrics: RubricsDir = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run of the same input and output")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar and no summary")] = False,
) -> None:
    """Grade an answer file (CSV / JSONL / Parquet) chunk by chunk; every row comes out once, in order."""
    from .batch import run_batch
    from .jobs import JobLedger
    from .rubric import load_rubrics
    from .store import Store

    settings = _settings(rubrics)
    loaded = load_rubrics(settings.rubrics_dir)
    ledger = JobLedger(Store(settings.database_url))
    with _batch_progress(enabled=not quiet and sys.stderr.isatty()) as on_progress:
        summary = run_batch(input_path, out, _grader(settings), loaded, ledger, resume=resume, on_progress=on_progress)
    if not quiet:
        _print_batch_summary(summary)


@app.command("eval")
def eval_() -> None:
    """Measure agreement with human grades on a data set."""
    raise GraderError("eval is not implemented yet")  # owned by the eval work (issue 7)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
