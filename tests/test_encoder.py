"""The encoder's readings: one pass per text (or several short texts packed apart in one), long texts in windows."""

from __future__ import annotations

import numpy as np

from grader.encoder import packs, windows
from grader.segment import segment_answer

ANSWER = (
    "Max pooling keeps the largest value in each 2x2 window, which halves the width and height of the "
    "feature maps. It adds no weights, so there is nothing to learn."
)


def test_a_reading_gives_the_same_sentence_vector_as_encode(grader):
    (reading,) = grader.encoder.read([ANSWER])
    assert np.array_equal(reading.sentence, grader.encoder.encode([ANSWER])[0])
    assert len(reading.tokens) == len(reading.offsets) and reading.offsets[-1, 1] <= len(ANSWER)


def test_a_text_over_the_models_limit_is_read_whole_in_overlapping_windows(grader):
    long = " ".join([ANSWER] * 9)
    (reading,) = grader.encoder.read([long])
    pieces = grader.encoder._pieces.encode(long, add_special_tokens=False)
    assert len(pieces.ids) > grader.encoder.max_seq_length  # past the limit: more than one window
    assert len(reading.tokens) == len(pieces.ids) and np.all(np.abs(reading.tokens).sum(axis=1) > 0)
    assert reading.word_tokens(long.rindex("nothing")).shape[0] == 3  # the last words have vectors too
    (truncated,) = grader.encoder.read([long], whole=False)
    assert np.array_equal(truncated.sentence, reading.sentence) and len(truncated.tokens) < len(reading.tokens)


def test_windows_cover_every_piece_and_overlap_by_half():
    spans = windows(600, 254)
    assert spans[0, 0] == 0 and spans[-1, 1] == 600 and np.all(spans[:, 1] - spans[:, 0] == 254)
    assert np.all(spans[1:, 0] < spans[:-1, 1])
    assert windows(100, 254).tolist() == [[0, 100]]


def test_clauses_read_apart_in_one_pass_match_each_clause_read_alone(grader):
    clauses = [c.text for c in segment_answer(ANSWER)]
    long = " ".join([ANSWER] * 9)  # past the limit: read on its own, in windows, as ``read`` does
    calls = grader.encoder.calls
    (apart, (alone_long,)) = grader.encoder.read_apart([clauses + [long], [long]])
    assert grader.encoder.calls == calls + 1
    alone = grader.encoder.read(clauses + [long])
    for a, b in zip(apart, alone):
        assert np.allclose(a.sentence, b.sentence, atol=1e-5) and np.allclose(a.tokens, b.tokens, atol=1e-4)
        assert np.array_equal(a.offsets, b.offsets)
    assert np.allclose(alone_long.sentence, apart[-1].sentence, atol=1e-5)


def test_packs_fill_up_to_the_limit_in_order():
    assert packs([3, 0, 4, 2, 5], 7) == [[0, 2], [3, 4]]
    assert packs([], 7) == [] and packs([0, 0], 7) == []


def test_lanes_read_side_by_side_and_give_the_vectors_of_one_pass_after_another(grader, rubrics):
    """Two lanes (the default) keep every pass on the same thread count, so nothing changes but the speed."""
    from grader.encoder import Encoder
    from grader.grade import Grader

    assert grader.encoder.lanes == 2
    texts = ["Batch norm.", "ok", ANSWER, " ".join([ANSWER] * 9)]  # short texts too: their last bits move first
    one_by_one = Encoder(None, 64, lanes=1)
    assert one_by_one.lanes == 1
    for a, b in zip(grader.encoder.read(texts), one_by_one.read(texts)):
        assert np.array_equal(a.sentence, b.sentence) and np.array_equal(a.tokens, b.tokens)
    answers = [(rubrics["max-pooling"], t) for t in texts[:3]] + [(rubrics["pca"], "PCA keeps the top components.")]
    sequential = Grader(grader.settings, encoder=one_by_one)
    assert grader.grade_many(answers) == sequential.grade_many(answers)


def test_passes_run_as_traced_graphs_with_the_eager_models_bits(grader, rubrics):
    """Both passes are TorchScript graphs (no GIL while they run) that read every text as eager torch does."""
    from grader.encoder import Encoder, packed_inputs
    from grader.grade import Grader

    texts = ["Batch norm.", "ok", ANSWER, " ".join([ANSWER] * 9)]
    clauses = [c.text for c in segment_answer(ANSWER)]
    traced = grader.encoder
    traced.read(texts)
    list(traced.read_apart([clauses]))
    assert traced._single.traced and traced._packed.traced
    eager = Encoder(None, 64)
    eager._single._run, eager._packed._run = eager._single.module, eager._packed.module  # as if tracing had failed
    for a, b in zip(traced.read(texts), eager.read(texts)):
        assert np.array_equal(a.sentence, b.sentence) and np.array_equal(a.tokens, b.tokens)
    pieces = [traced._pieces.encode(c).ids for c in clauses]
    assert np.array_equal(traced._packed(*packed_inputs(pieces)), eager._packed(*packed_inputs(pieces)))
    answers = [(rubrics["max-pooling"], t) for t in texts[:3]] + [(rubrics["pca"], "PCA keeps the top components.")]
    assert grader.grade_many(answers) == Grader(grader.settings, encoder=eager).grade_many(answers)


def test_a_pass_the_tracer_cannot_reproduce_runs_eagerly():
    """A graph whose outputs differ from eager's on a probe is not used."""
    import torch

    from grader.traced import trace_or_eager

    class Clock(torch.nn.Module):  # different on every call, so no trace can match it
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return x + self.calls

    module = Clock()
    run, traced = trace_or_eager(module, [(torch.ones(2),)])
    assert run is module and not traced
