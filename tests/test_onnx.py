"""The ONNX 8-bit backend: loads offline, agrees with the torch path, packs clauses, and exports once per cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'answer-grader[onnx]'")

from grader.cli import app  # noqa: E402
from grader.encoder import load_encoder, unit_rows  # noqa: E402
from grader.onnx_encoder import QUANTIZED_FILE, OnnxEncoder  # noqa: E402
from grader.settings import get_settings  # noqa: E402

# Answer-like clauses; very short texts ("I don't know.") agree less (~0.97), see benchmarks/results/encoders.md.
SENTENCES = [
    "Batch normalization normalizes a layer's inputs using mini-batch statistics.",
    "It lets you train with higher learning rates and makes training more stable.",
    "PCA projects the data onto the directions of largest variance.",
    "Overfitting means the model memorizes the training set and does badly on new data.",
    "Max pooling keeps the strongest activation in each window.",
    "A prototype simulates portions of the final software product.",
    "The stack is last in, first out, while the queue is first in, first out.",
    "ReLU does not saturate for positive inputs, so gradients do not vanish.",
    "Residual connections let gradients flow through very deep networks.",
    "You can fill missing values with the median or drop the rows with too many gaps.",
]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def onnx_encoder(onnx_cache: Path) -> OnnxEncoder:
    """Exported once per test session into a fresh cache (about 10-30 s)."""
    return load_encoder(None, 64, "onnx", onnx_cache)


def test_onnx_export_runs_offline_and_is_cached(onnx_encoder, onnx_cache):
    assert onnx_encoder.exported
    assert onnx_encoder.path.is_file() and onnx_encoder.path.parent.parent == onnx_cache
    assert not list(onnx_cache.glob(".export-*")), "the scratch folder of the export is left behind"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_both_backends_give_384_dim_unit_vectors(backend, onnx_encoder, onnx_cache):
    encoder = load_encoder(None, 64, backend, onnx_cache)
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_onnx_agrees_with_torch(onnx_encoder, onnx_cache):
    torch_vectors = load_encoder(None, 64).encode(SENTENCES)
    cosines = (torch_vectors * onnx_encoder.encode(SENTENCES)).sum(axis=1)
    assert cosines.min() >= 0.995, cosines.round(4)


def test_word_token_vectors_agree_between_backends(onnx_encoder):
    texts = [*SENTENCES[:3], "?!", "ReLU, not sigmoid."]
    torch_vectors, torch_tokens = load_encoder(None, 64).encode_with_tokens(texts)
    onnx_vectors, onnx_tokens = onnx_encoder.encode_with_tokens(texts)
    np.testing.assert_allclose(onnx_vectors, onnx_encoder.encode(texts), atol=1e-6)  # the same pass as encode
    np.testing.assert_allclose(torch_vectors, load_encoder(None, 64).encode(texts), atol=1e-6)
    assert [len(t) for t in torch_tokens] == [len(t) for t in onnx_tokens]
    assert len(torch_tokens[3]) == 0 and len(torch_tokens[4]) == 6  # re ##lu not si ##gm ##oid: no comma, no stop
    for a, b in zip(torch_tokens, onnx_tokens):
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
        assert ((a * b).sum(axis=1) >= 0.9).all()


def test_onnx_vectors_do_not_depend_on_their_batch_mates(onnx_encoder, onnx_cache):
    # onnx_encoder first: the export belongs to that fixture (tests run in random order), this load reuses it.
    encoder = OnnxEncoder(None, batch_size=3, cache_dir=onnx_cache)
    order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]
    shuffled = encoder.encode([SENTENCES[i] for i in order])
    reference = encoder.encode(SENTENCES)
    # One text per run makes a vector a function of its text.
    np.testing.assert_array_equal(shuffled, reference[order])
    np.testing.assert_array_equal(encoder.encode(SENTENCES[4:5])[0], reference[4])
    assert encoder.calls == 3


def test_packed_run_gives_each_text_the_reading_it_gets_alone(onnx_encoder):
    pieces = [e.ids for e in onnx_encoder._pieces.encode_batch(SENTENCES[:5])]
    packed = onnx_encoder._forward_packed(pieces)
    assert len(packed) == len(pieces)
    for ids, (vector, tokens) in zip(pieces, packed):
        alone_vector, alone_tokens = onnx_encoder._forward(ids)
        assert tokens.shape == alone_tokens.shape == (len(ids), 384)
        np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)
        # Weight-only 8-bit quantizes each row's activations on its own: packing changes only float rounding.
        assert vector @ alone_vector >= 0.9995
        assert (unit_rows(tokens) * unit_rows(alone_tokens)).sum(axis=1).min() >= 0.999


def test_read_apart_packs_an_answers_clauses_into_one_session_run(onnx_encoder):
    runs = []
    onnx_encoder.session = _CountingSession(onnx_encoder.session, runs)
    try:
        (readings,) = onnx_encoder.read_apart([SENTENCES[:4]])
    finally:
        onnx_encoder.session = onnx_encoder.session.inner
    assert len(runs) == 1
    alone = onnx_encoder.encode(SENTENCES[:4])
    assert (np.stack([r.sentence for r in readings]) * alone).sum(axis=1).min() >= 0.9995


class _CountingSession:
    """The real session, counting its runs (not a mock: every run goes to the model)."""

    def __init__(self, inner, runs: list) -> None:
        self.inner, self.runs = inner, runs

    def run(self, *args, **kwargs):
        self.runs.append(1)
        return self.inner.run(*args, **kwargs)


def test_second_load_reuses_the_export(onnx_encoder, onnx_cache):
    before = onnx_encoder.path.stat().st_mtime_ns
    again = OnnxEncoder(None, cache_dir=onnx_cache)
    assert not again.exported and again.path == onnx_encoder.path
    assert again.path.stat().st_mtime_ns == before


def test_backend_is_part_of_the_fingerprint(onnx_encoder, grader, rubrics):
    from grader.grade import Grader

    onnx_grader = Grader(grader.settings, onnx_encoder)
    rubric = rubrics["max-pooling"]
    a, b = grader.fingerprint(rubric), onnx_grader.fingerprint(rubric)
    assert a.model == "all-MiniLM-L6-v2" and b.model == "all-MiniLM-L6-v2+onnx-int8"
    assert a.model_hash != b.model_hash
    answer = "It keeps the largest value in each window, so the map shrinks and small shifts do not matter."
    assert abs(grader.grade(rubric, answer).coverage - onnx_grader.grade(rubric, answer).coverage) <= 0.25


def test_model_prepare_command_reports_the_cached_export(onnx_encoder, onnx_cache, monkeypatch):
    monkeypatch.setenv("GRADER_ONNX_CACHE_DIR", str(onnx_cache))
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["model", "prepare"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "already prepared" in out.stdout and QUANTIZED_FILE in out.stdout


def test_unknown_backend_is_named_in_the_error():
    from grader.errors import GraderError

    with pytest.raises(GraderError, match="unknown encoder backend 'tpu'"):
        load_encoder(None, 64, "tpu")


def test_onnx_grade_and_batch_agree(onnx_encoder, grader, rubrics):
    # One session run per answer (its clauses packed): a grade alone and among others is the same result, digit
    # for digit.
    from grader.grade import Grader

    onnx_grader = Grader(grader.settings, onnx_encoder)
    rubric = rubrics["max-pooling"]
    answers = [SENTENCES[4], "It keeps the largest value in each window, so the map shrinks.", SENTENCES[0]]
    alone = [onnx_grader.grade(rubric, a).model_dump() for a in answers]
    together = onnx_grader.grade_many([(rubric, a) for a in reversed(answers)])[::-1]
    assert alone == [r.model_dump() for r in together]
