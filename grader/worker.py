"""The inference worker: one thread owns the model and grades queued answers in micro-batches.

A transformer on CPU grades 16 answers in one ``encode`` call far faster than in 16 calls, and two
threads calling the model at once only fight over the same cores. So concurrent callers (the API's
request handlers) never touch the model: they enqueue ``(rubric, answer)`` and wait on a future,
and this single thread drains the queue in micro-batches (wait at most ``window_ms`` after the
first item, take at most ``max_size``) and calls ``Grader.grade_many`` once per micro-batch.

Nothing here knows about HTTP; ``on_batch`` lets a caller record metrics.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from .errors import GraderError
from .grade import Grader
from .result import GradeResult
from .rubric import Rubric

log = logging.getLogger(__name__)

Outcome = GradeResult | GraderError
BatchObserver = Callable[[int, float], None]  # (answers in the micro-batch, seconds spent grading it)


@dataclass(slots=True)
class _Job:
    rubric: Rubric
    answer: str | bytes
    future: Future[Outcome]


_STOP = object()


class WorkerStopped(RuntimeError):
    """Raised by ``submit`` after ``stop``: the service is shutting down."""


class InferenceWorker:
    """Owns ``grader`` on one thread; ``submit`` / ``grade`` are safe from any thread or event loop."""

    def __init__(
        self,
        grader: Grader,
        window_ms: float = 3.0,
        max_size: int = 64,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self.grader = grader
        self.window = window_ms / 1000.0
        self.max_size = max_size
        self.on_batch = on_batch
        self.batches = 0  # micro-batches graded so far
        self.answers = 0  # answers graded so far (results and per-answer errors)
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="grader-inference", daemon=True)
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> InferenceWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the micro-batch in hand, cancel what is still queued, and join the thread."""
        self._stopping = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def queue_depth(self) -> int:
        """Answers waiting for the model (approximate, as any queue size read from another thread)."""
        return self._queue.qsize()

    # -- submitting --------------------------------------------------------------------------------
    def submit(self, items: Sequence[tuple[Rubric, str | bytes]]) -> list[Future[Outcome]]:
        """Queue answers for grading; each future resolves to its ``GradeResult`` or ``GraderError``."""
        if self._stopping:
            raise WorkerStopped("the grading worker is shutting down; retry against a running server")
        futures: list[Future[Outcome]] = []
        for rubric, answer in items:
            job = _Job(rubric, answer, Future())
            futures.append(job.future)
            self._queue.put(job)
        return futures

    async def grade(self, items: Sequence[tuple[Rubric, str | bytes]]) -> list[Outcome]:
        """Await the outcomes of ``items`` without blocking the event loop."""
        futures = [asyncio.wrap_future(f) for f in self.submit(items)]
        return list(await asyncio.gather(*futures))

    # -- the worker thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._collect(first)
            self._grade(batch)
            if stop:
                break
        self._cancel_pending()

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """Gather a micro-batch: ``first`` plus whatever arrives within the window, up to max_size."""
        batch = [first]
        deadline = time.monotonic() + self.window
        while len(batch) < self.max_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _grade(self, batch: list[_Job]) -> None:
        # A caller that gave up (client disconnected, cancelled task) no longer needs its answer graded.
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        done = 0
        try:
            # Each caller gets its result as soon as it is judged, not after the whole micro-batch: it can store
            # and answer (and a busy client send its next answer) while the encoder reads the rest.
            for job, outcome in zip(live, self.grader.grade_iter([(job.rubric, job.answer) for job in live])):
                if done == len(live) - 1:  # recorded before the last caller wakes: a caller with its result sees its batch
                    self._record(len(live), time.perf_counter() - started)
                job.future.set_result(outcome)
                done += 1
        except Exception as err:  # a bug, not bad input: fail the rest of this micro-batch, keep serving
            log.exception("grading a micro-batch of %d answers failed", len(live))
            for job in live[done:]:
                job.future.set_exception(err)

    def _record(self, answers: int, elapsed: float) -> None:
        self.batches += 1
        self.answers += answers
        if self.on_batch is not None:
            self.on_batch(answers, elapsed)

    def _cancel_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job):
                item.future.cancel()
