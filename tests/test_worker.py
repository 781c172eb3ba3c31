"""The inference worker: concurrent submissions share one model call; bad answers fail alone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from grader.errors import AnswerError
from grader.worker import InferenceWorker, WorkerStopped

ANSWERS = [
    "Batch normalization normalizes activations with mini-batch statistics.",
    "It lets you train with higher learning rates.",
    "At inference it uses running averages of mean and variance.",
    "It adds a learned scale and shift.",
]


@pytest.fixture()
def worker(grader):
    sizes: list[int] = []
    w = InferenceWorker(grader, window_ms=200, max_size=64, on_batch=lambda n, _: sizes.append(n)).start()
    w.sizes = sizes
    yield w
    w.stop()


def test_answers_submitted_together_are_graded_in_one_model_call(worker, grader, rubrics) -> None:
    rubric = rubrics["batch-normalization"]
    grader.grade(rubric, "warm the rubric cache")
    calls = grader.encoder.calls
    barrier = threading.Barrier(len(ANSWERS))
    outcomes: dict[int, object] = {}

    def client(i: int) -> None:
        barrier.wait()
        outcomes[i] = worker.submit([(rubric, ANSWERS[i])])[0].result(timeout=60)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(ANSWERS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert grader.encoder.calls - calls == 1 and worker.sizes[-1] == len(ANSWERS)
    expected = grader.grade_many([(rubric, a) for a in ANSWERS])
    assert [outcomes[i].score for i in range(len(ANSWERS))] == [r.score for r in expected]


def test_each_caller_gets_its_result_as_soon_as_it_is_judged(worker, rubrics) -> None:
    """The first answer of a micro-batch is answered while the others are still being graded."""
    rubric = rubrics["batch-normalization"]
    grader_calls = worker.grader.encoder.calls
    futures = worker.submit([(rubric, a) for a in ANSWERS])  # one micro-batch: the window is 200 ms
    rest_done_when_first = []
    futures[0].add_done_callback(lambda _: rest_done_when_first.append([f.done() for f in futures[1:]]))
    outcomes = [f.result(timeout=60) for f in futures]
    assert worker.sizes[-1] == len(ANSWERS) and worker.grader.encoder.calls - grader_calls == 1
    assert rest_done_when_first == [[False] * (len(ANSWERS) - 1)]
    assert [o.score for o in outcomes] == [r.score for r in worker.grader.grade_many([(rubric, a) for a in ANSWERS])]


def test_a_bad_answer_becomes_its_error_without_failing_the_batch(worker, rubrics) -> None:
    rubric = rubrics["batch-normalization"]

    async def grade():
        return await worker.grade([(rubric, ANSWERS[0]), (rubric, "   "), (rubric, ANSWERS[1])])

    good, bad, other = asyncio.run(grade())
    assert isinstance(bad, AnswerError) and bad.field == "answer"
    assert good.rubric_id == other.rubric_id == "batch-normalization"


def test_a_stopped_worker_refuses_new_work(grader, rubrics) -> None:
    w = InferenceWorker(grader).start()
    w.stop()
    assert not w.alive
    with pytest.raises(WorkerStopped):
        w.submit([(rubrics["batch-normalization"], ANSWERS[0])])
