"""Batch grading on Ray Data, for when one machine is not enough (``grader batch --engine ray``).

The same ``grade_batch`` runs over the same chunks as the local engine, only in a pool of Ray
actors that each load the model once (``GradeBatch``), anywhere in a cluster. What decides a
row's result stays in this process, so both engines write the same rows:

- the input is read here by ``AnswerFile`` (same row numbers, same read errors, same validation
  of a bad file) and each chunk goes to Ray's object store as one block (the whole file is
  read up front; Ray spills blocks to disk when its object store is full);
- rubrics drafted from ``question`` + ``reference`` rows are drafted here, written beside the
  output for review, and handed to every actor;
- graded blocks come back with their row numbers and are written in input order by the local
  engine's writers (``grader.files``).

Only a rounded score can differ, by 0.001 in a rare row: an embedding depends on its batch mates
in the 7th digit, and each actor embeds the rubrics along with its first block.

Ray is an optional extra and is imported only when this engine runs. There is no job ledger:
``--resume`` belongs to the local engine, and a Ray run that dies starts again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import pandas as pd
import pyarrow as pa

# The local engine's own row logic, so both engines resolve, tally and draft alike.
from .batch import DEFAULT_CHUNK_ROWS, BatchSummary, GradeBatch, rubrics_for_rows, tally_of, write_drafts
from .errors import GraderError, MissingExtra
from .files import OUTPUT_COLUMNS, OUTPUT_SCHEMA, AnswerFile, file_format, open_writer
from .jobs import ChunkTally
from .rubric import Rubric
from .settings import Settings

BLOCK_SCHEMA = OUTPUT_SCHEMA.insert(0, pa.field("row", pa.int64()))


def import_ray() -> ModuleType:
    """``ray`` with Ray Data, or a ``MissingExtra`` that says how to install it."""
    MissingExtra.require("ray", ("ray", "ray.data"), "--engine ray (Ray Data)", field="engine")
    import ray

    return ray


class GradeBlock(GradeBatch):
    """``GradeBatch`` for one block: starts with the driver's drafted rubrics and keeps each row's
    number, so the driver can write blocks in input order whichever actor finished first."""

    def __init__(self, settings: Settings, rubrics: dict[str, Rubric], drafts: dict[str, Rubric]) -> None:
        super().__init__(settings, rubrics)
        self.drafts.update(drafts)

    def __call__(self, frame: pd.DataFrame) -> pa.Table:  # type: ignore[override]
        graded = super().__call__(frame)
        graded.insert(0, "row", frame["row"].astype("int64").to_numpy())
        # An explicit schema: a block whose errors are all None must not come back as a null column.
        return pa.Table.from_pandas(graded, schema=BLOCK_SCHEMA, preserve_index=False)


def _as_results(block: pa.Table) -> tuple[int, pd.DataFrame]:
    """A graded block as (its first row number, the frame ``grade_batch`` returned), lists as lists."""
    columns = block.to_pydict()
    rows = columns.pop("row")
    if rows != list(range(rows[0], rows[0] + len(rows))):
        raise RuntimeError(f"a graded block holds rows {rows[0]}..{rows[-1]} out of order; this is a bug")
    return rows[0], pd.DataFrame(columns, columns=list(OUTPUT_COLUMNS))


@dataclass
class RaySummary(BatchSummary):
    actors: int = 0
    cluster_cpus: int = 0
    address: str = ""

    def describe(self) -> str:
        where = f"Ray at {self.address}" if self.address else "a local Ray"
        return (
            f"{super().describe()}\n"
            f"graded by {self.actors} Ray actor(s) on {where} ({self.cluster_cpus} CPUs) in {self.seconds:.1f} s"
        )


@contextmanager
def ray_session(ray: ModuleType, address: str | None) -> Iterator[None]:
    """Connect to ``address`` (or start a local Ray with this machine's CPUs) for the run, and
    disconnect after; a process already connected (a library caller, the tests) keeps its session."""
    if address and address.startswith("ray://"):
        # The streaming executor runs in the driver and needs a full Ray worker (ray-project/ray#48682).
        raise GraderError(
            f"Ray Data does not run over Ray Client ({address}); run the command on a node of the cluster with "
            "--address auto (or HEAD:6379), or submit it as a Ray job: ray job submit --address http://HEAD:8265 "
            "--working-dir . -- grader batch INPUT --out OUTPUT --engine ray --address auto",
            field="address",
        )
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset INFO lines; the CLI reports progress
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise GraderError(
            f"cannot connect to Ray at {address or 'a new local instance'} ({err}); check the address "
            "(HOST:6379 or auto on a node of a `ray start --head` cluster) or omit --address to run on a new local "
            "Ray; a cluster with token authentication (Ray's default) also needs RAY_AUTH_MODE=token here",
            field="address",
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def default_actor_count(cluster_cpus: int, blocks: int) -> int:
    """One actor per CPU of the cluster (each grades on one thread), never more than there are
    blocks: an idle actor would still load the model (``--actors`` is capped the same way)."""
    return max(1, min(cluster_cpus, blocks))


def run_ray_batch(
    input_path: str | Path,
    output: Path,
    settings: Settings,
    rubrics: dict[str, Rubric],
    *,
    address: str | None = None,
    actors: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stdin: BinaryIO | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> RaySummary:
    """Grade ``input_path`` into ``output`` on Ray: blocks of ``chunk_rows`` rows, ``actors`` model copies.

    The output is ``run_batch``'s for the same input: same rows, ids, order, statuses, error
    messages and file format (scores to their last rounded digit, see the module docstring).
    Drafted rubrics are written beside it for review, as there.
    """
    ray = import_ray()
    started = time.perf_counter()
    source = AnswerFile(input_path, stdin=stdin)  # a bad file fails here, before Ray starts
    output = Path(output)
    file_format(output, role="output")
    with ray_session(ray, address):
        blocks, drafts, total = [], {}, 0
        for chunk in source.chunks(chunk_rows):
            _draft_references(chunk, rubrics, drafts, settings.max_answer_chars)
            blocks.append(ray.put(chunk))
            total += len(chunk)
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = min(actors, max(len(blocks), 1)) if actors else default_actor_count(cluster_cpus, len(blocks))
        writer = open_writer(output)
        written: set[str] = set()
        write_drafts(output, drafts, written)
        tally, done = ChunkTally(), 0
        if on_progress:
            on_progress(0, total)
        if blocks:
            dataset = ray.data.from_pandas_refs(blocks)
            dataset.context.execution_options.preserve_order = True  # blocks come back in input order
            dataset.context.enable_progress_bars = False  # the CLI shows its own (on_progress) ...
            logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # ... without a notice saying so
            graded = dataset.map_batches(
                GradeBlock,
                fn_constructor_args=(settings, rubrics, drafts),
                batch_format="pandas",
                batch_size=None,  # one block (one chunk) per call: one grade_many, as in the local engine
                compute=ray.data.ActorPoolStrategy(size=pool),
                num_cpus=1,  # Ray then gives each actor one torch thread: actors, not threads, use the cores
            )
            waiting: dict[int, pd.DataFrame] = {}
            for block in graded.iter_batches(batch_size=None, batch_format="pyarrow"):
                first, frame = _as_results(block)
                waiting[first] = frame
                while done + 1 in waiting:
                    results = waiting.pop(done + 1)
                    writer.write(results)
                    tally.add(tally_of(results))
                    done += len(results)
                    if on_progress:
                        on_progress(done, total)
            if waiting or done != total:
                raise RuntimeError(f"Ray returned {done} of {total} rows in order; this is a bug")
        writer.finish()
    return RaySummary(
        job_id="ray",
        output=output,
        rows=done,
        graded=tally.graded,
        errors=tally.errors,
        mean_scores=tally.mean_scores,
        seconds=time.perf_counter() - started,
        drafted=sorted(written),
        actors=pool,
        cluster_cpus=cluster_cpus,
        address=address or os.environ.get("RAY_ADDRESS", ""),
    )


def _draft_references(chunk: pd.DataFrame, rubrics: dict[str, Rubric], drafts: dict[str, Rubric], max_chars: int) -> None:
    """Draft the rubrics of ``question`` + ``reference`` rows into ``drafts``, as the local engine
    would; a row whose draft fails stays an error row, reported again by the actor that grades it."""
    rubrics_for_rows(chunk.to_dict("records"), rubrics, drafts, max_chars)
