"""The ``grader`` command line: a thin Typer shell over the library.

Input errors (``GraderError``) become a one-line message on stderr and exit code 2, in one place
(``_Group.invoke``), never a traceback.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
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
    from .encoder import configured_encoder
    from .rubric import load_rubric, load_rubrics

    settings = get_settings()
    target = path or settings.rubrics_dir
    rubrics = list(load_rubrics(target).values()) if target.is_dir() else [load_rubric(target)]
    encoder = configured_encoder(settings)
    warnings = check_rubrics(rubrics, encoder)
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
    workers: Annotated[int, typer.Option(min=1, help="server processes; each loads its own copy of the model")] = 1,
) -> None:
    """Run the HTTP API (see api/); settings come from GRADER_* variables or .env."""
    import uvicorn

    from .store import Store

    settings = get_settings()
    bind = {"host": host or settings.host, "port": port or settings.port, "log_level": "info"}
    if workers == 1:
        from api.app import create_app

        uvicorn.run(create_app(settings), **bind)
    else:  # worker processes build their own app (and read the same GRADER_* settings)
        Store(settings.database_url)  # migrate the schema once here, not in N workers at the same moment
        uvicorn.run("api.app:create_app", factory=True, workers=workers, **bind)


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@app.command()
def batch(
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="answers: .csv, .jsonl or .parquet; - for JSONL on stdin")],
    out: Annotated[Path, typer.Option("--out", "-o", help="results file: .csv, .jsonl or .parquet")],
    rubrics: RubricsDir = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue an interrupted run of the same input and output (--engine local only)")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar and no summary")] = False,
    chunk_rows: Annotated[
        int, typer.Option(min=1, max=100_000, help="rows graded together (local: and committed; ray: one block per actor call)")
    ] = 512,
    engine: Annotated[
        Engine,
        typer.Option(
            help="local: this process, committed per chunk and resumable; ray: an actor pool on Ray Data "
            "(the ray extra), same output, no job ledger and no --resume"
        ),
    ] = Engine.local,
    address: Annotated[
        Optional[str],
        typer.Option(
            help="--engine ray: the cluster, HOST:6379 or auto, from a node of a `ray start --head` cluster (Ray Data "
            "cannot run over ray:// clients); default: RAY_ADDRESS, else a new local Ray with this machine's CPUs"
        ),
    ] = None,
    actors: Annotated[
        Optional[int],
        typer.Option(min=1, help="--engine ray: grading actors, each loads the model once (default: the cluster's CPUs, at most one per chunk)"),
    ] = None,
) -> None:
    """Grade an answer file (CSV / JSONL / Parquet) chunk by chunk; every row comes out once, in order."""
    from .batch import console_progress, run_batch
    from .rubric import load_rubrics

    if engine is Engine.local and (address or actors):
        raise GraderError("--address and --actors apply to --engine ray only", field="engine")
    if engine is Engine.ray and resume:
        raise GraderError("--resume applies to --engine local only: a Ray run keeps no job ledger; run it again", field="resume")
    settings = _settings(rubrics)
    loaded = load_rubrics(settings.rubrics_dir)
    with console_progress(enabled=not quiet and sys.stderr.isatty()) as on_progress:
        if engine is Engine.ray:
            from .ray_engine import run_ray_batch

            summary = run_ray_batch(
                input_path, out, settings, loaded, address=address, actors=actors, chunk_rows=chunk_rows, on_progress=on_progress
            )
        else:
            from .jobs import JobLedger
            from .store import Store

            ledger = JobLedger(Store(settings.database_url))
            summary = run_batch(
                input_path, out, _grader(settings), loaded, ledger, resume=resume, chunk_rows=chunk_rows, on_progress=on_progress
            )
    if not quiet:
        typer.echo(summary.describe())


@app.command("eval")
def eval_(
    data: Annotated[Path, typer.Argument(help="mohler.csv, a SAF folder (or split), or eval/data/ml_interview")],
    out: Annotated[Path, typer.Option("--out", help="folder for the report, plots and per-row scores")] = Path("eval-out"),
) -> None:
    """Measure agreement with human grades on a data set: ours vs baselines, linear / shipped / CV calibration."""
    from eval.report import eval_dataset

    if not data.exists():
        raise GraderError(f"data set {data} not found; pass mohler.csv, a SAF folder or eval/data/ml_interview")
    typer.echo(str(eval_dataset(data, out, get_settings())))


model_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Prepare the embedding model.")
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare(
    force: Annotated[bool, typer.Option("--force", help="export again even if a cached export exists")] = False,
) -> None:
    """Export the configured model to ONNX (8-bit weights) now, so the first GRADER_BACKEND=onnx start does not wait."""
    from .encoder import packaged_model_path
    from .onnx_encoder import default_cache_dir, prepare_onnx_model

    settings = get_settings()
    source = settings.model_path or packaged_model_path()
    path, exported = prepare_onnx_model(source, settings.onnx_cache_dir or default_cache_dir(), force=force)
    typer.echo(f"{'exported' if exported else 'already prepared'}: {path}")


@app.command()
def tune(
    rubric: Annotated[str, typer.Argument(metavar="RUBRIC", help="a rubric id or YAML path (--compare: OLD NEW DATA)")],
    data: Annotated[list[str], typer.Argument(metavar="DATA", help="CSV / JSONL: 'answer', optional 'score' (human)")],
    out: Annotated[Path, typer.Option("--out", help="folder for report.md, report.html and plots")] = Path("tune-out"),
    compare: Annotated[bool, typer.Option("--compare", help="regrade DATA with two rubric versions")] = False,
    rubrics: RubricsDir = None,
) -> None:
    """Tuning report for one rubric (hit rates, disagreements, CV-fitted thresholds), or the impact of a change."""
    from eval.tune_report import comparison_markdown, write_tune_report

    from .rubric import resolve_rubric
    from .tune import compare_rubrics, read_tune_data, tune_rubric

    settings = _settings(rubrics)
    if compare:
        if len(data) != 2:
            raise GraderError("--compare takes OLD NEW DATA: two rubrics and one data file")
        old, new = resolve_rubric(rubric, settings.rubrics_dir), resolve_rubric(data[0], settings.rubrics_dir)
        comparison = compare_rubrics(_grader(settings), old, new, read_tune_data(data[1]).answers)
        typer.echo(comparison_markdown(comparison), nl=False)
        return
    if len(data) != 1:
        raise GraderError("tune takes RUBRIC DATA (one data file); use --compare OLD NEW DATA to compare rubrics")
    rows, chosen = read_tune_data(data[0]), resolve_rubric(rubric, settings.rubrics_dir)
    report = tune_rubric(_grader(settings), chosen, rows)
    typer.echo(str(write_tune_report(report, out)))


review_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Human review of stored grades (the review loop).")
app.add_typer(review_app, name="review")
RubricFilter = Annotated[Optional[str], typer.Option("--rubric", help="only results of this rubric id")]


def _store(settings: Settings):
    from .store import Store

    return Store(settings.database_url)


@review_app.command("export")
def review_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="the file to fill in: .csv, .jsonl or .parquet")],
    rubric: RubricFilter = None,
    all_: Annotated[
        bool, typer.Option("--all", help="every stored result, reviewed ones with their latest review filled in")
    ] = False,
) -> None:
    """Write the results to review (unreviewed, needing review, least confident first) for a spreadsheet."""
    from .review_files import export_reviews

    count = export_reviews(_store(get_settings()), out, rubric, all_)
    typer.echo(f"{count} result(s) written to {out}; fill in human_score (and comment), then: grader review import {out}")


@review_app.command("import")
def review_import(
    file: Annotated[Path, typer.Argument(help="a file from `grader review export` with human_score filled in")],
    reviewer: Annotated[
        Optional[str], typer.Option(help="who reviewed, stored with each review (default: your user name)")
    ] = None,
) -> None:
    """Store the filled-in human_score / comment columns as reviews; bad rows are reported (exit 1), the rest stored."""
    import getpass

    from .review_files import import_reviews

    report = import_reviews(_store(get_settings()), file, reviewer or getpass.getuser())
    typer.echo(report.describe())
    if report.errors:
        raise typer.Exit(1)


@review_app.command("pick")
def review_pick(
    n: Annotated[int, typer.Argument(min=1, help="how many answers to pick")],
    rubric: RubricFilter = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="write them as a review file (as export) instead of printing")] = None,
) -> None:
    """Pick the N unreviewed answers whose human grades would teach the grader most (spread over answers and scores)."""
    from .encoder import configured_encoder
    from .review import informative_queue
    from .review_files import write_review_file

    settings = get_settings()
    encoder = configured_encoder(settings)
    picked = informative_queue(_store(settings), encoder, rubric, None, n).items
    if out is not None:
        write_review_file(out, picked)
        typer.echo(f"{len(picked)} result(s) written to {out}")
        return
    for item in picked:
        typer.echo(f"{item.id}\t{item.rubric_id}\t{item.score:g}/{item.max_score:g}\tconfidence {item.confidence:.2f}\t{item.answer[:80]!r}")


@app.command()
def calibrate(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="the review calibration artefact to write (JSON)")] = None,
    from_reviews: Annotated[
        bool, typer.Option("--from-reviews", help="fit on the store's reviewed results (the latest review of each)")
    ] = False,
    compare: Annotated[
        Optional[Path],
        typer.Option("--compare", help="an artefact: regrade the rubric's stored results under it and list the grades that move"),
    ] = None,
    rubric: RubricFilter = None,
) -> None:
    """Refit the default score on human reviews (cross-validated, written with --out), or --compare one on stored grades.

    The artefact keeps the evidence mapping's per-key-point logistic, refits its curve on the reviews and keeps the
    reviewed answers as references; every guard still applies after it. Turn it on with GRADER_REVIEW_CALIBRATIONS.
    """
    from .grade import Grader

    settings = get_settings()
    if from_reviews == (compare is not None):
        raise GraderError("say what to do: --from-reviews --out PATH (fit) or --compare ARTEFACT --rubric ID", field="from_reviews")
    grader = Grader(settings.model_copy(update={"review_calibrations": []}))
    if compare is not None:
        from .impact import calibration_impact
        from .review_calibration import load_review_calibration

        if rubric is None:
            raise GraderError("--compare needs --rubric ID: the rubric whose stored grades to regrade", field="rubric")
        candidate = load_review_calibration(compare)
        impact = calibration_impact(_store(settings), grader, rubric, candidate, settings.max_impact_results)
        _print_json(impact.model_dump(mode="json"))
        return
    if out is None:
        raise GraderError("--from-reviews needs --out PATH: where to write the artefact", field="out")
    from .review_fit import fit_from_reviews

    fitted = fit_from_reviews(_store(settings), grader, out, rubric, settings.min_reviews_to_calibrate)
    typer.echo(fitted.describe())


db_app = typer.Typer(cls=_Group, no_args_is_help=True, help="The store's schema (Alembic migrations).")
app.add_typer(db_app, name="db")
DatabaseUrl = Annotated[Optional[str], typer.Option("--url", help="SQLAlchemy URL (default: GRADER_DATABASE_URL)")]


@db_app.command("upgrade")
def db_upgrade(
    url: DatabaseUrl = None,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Migrate the store to REVISION (the service and the CLI also do this when they open it)."""
    from .store import make_engine, migrate, schema_revision

    engine = make_engine(url or get_settings().database_url)
    before = schema_revision(engine)
    migrate(engine, revision)
    typer.echo(f"schema: {before or 'empty'} -> {schema_revision(engine)}")


@db_app.command("current")
def db_current(url: DatabaseUrl = None) -> None:
    """Print the store's schema revision ('empty' for a store never opened)."""
    from .store import make_engine, schema_revision

    typer.echo(schema_revision(make_engine(url or get_settings().database_url)) or "empty")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
