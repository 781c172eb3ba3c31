"""The ONNX encoder: the same embeddings as the torch path, about twice as fast on a CPU.

The configured sentence-transformers model is exported once (``torch.onnx.export`` of its
transformer, as a graph over texts packed end to end), its weight matrices are quantized to 8 bits
(weight-only ``MatMulNBits``), and the result is cached per user, keyed by the source model's weight
hash and the export recipe. Pooling and normalisation run in numpy after the session, as the model's
``modules.json`` / ``1_Pooling/config.json`` say. Needs the ``onnx`` extra.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import numpy as np

from .encoder import (
    PassReader, packaged_model_path, packed_layout, unit_rows, unpacked, untruncated_tokenizer, weights_hash,
)
from .errors import GraderError, MissingExtra

# Input rows per weight block of the 8-bit MatMuls. On Mohler (share of scores within 0.05 of torch's /
# time of one pass over a 66-word answer): 32: 97.3% / 17.0 ms, 64: 96.1% / 15.6 ms, 128: 95.4% / 14.5 ms
# (bar 95%); 64 clears it by more than a threshold change tends to move (benchmarks/results/encoders.md).
WEIGHT_BLOCK = 64
# Changes with the export or quantization, so stale cached files are never reused.
RECIPE = f"onnx-q8w-b{WEIGHT_BLOCK}-packed-v2"
QUANTIZED_FILE = "model-int8.onnx"
_POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}
_INPUTS = ("input_ids", "position_ids", "owner")
# One text (or one answer's clauses, packed) per session run, as in the torch encoder
# (``grader.encoder.PassReader``), so ``grade`` and ``batch`` agree.
ONNX_BATCH = 1


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("answer-grader"))


@dataclass(frozen=True)
class ModelLayout:
    """What the sentence-transformers config files say about running the transformer's output."""

    transformer_dir: Path
    pooling: str
    max_seq_length: int

    @classmethod
    def read(cls, model_dir: Path) -> "ModelLayout":
        modules = _read_json(model_dir / "modules.json") or []
        by_type = {m["type"].rsplit(".", 1)[-1]: m for m in modules}
        transformer_dir = model_dir / by_type.get("Transformer", {}).get("path", "")
        pooling = "mean"  # sentence-transformers' default for a plain transformer directory
        if "Pooling" in by_type:
            cfg = _read_json(model_dir / by_type["Pooling"]["path"] / "config.json") or {}
            chosen = [mode for key, mode in _POOLING_MODES.items() if cfg.get(key)]
            unknown = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v and k not in _POOLING_MODES]
            if len(chosen) != 1 or unknown:
                raise GraderError(
                    f"the ONNX backend supports exactly one of {sorted(_POOLING_MODES)} in {model_dir}/1_Pooling; "
                    f"this model uses {chosen + unknown}: set GRADER_BACKEND=torch",
                    field="backend",
                )
            pooling = chosen[0]
        st_cfg = _read_json(transformer_dir / "sentence_bert_config.json") or _read_json(
            model_dir / "sentence_bert_config.json"
        )
        hf_cfg = _read_json(transformer_dir / "config.json") or {}
        max_len = (st_cfg or {}).get("max_seq_length") or hf_cfg.get("max_position_embeddings") or 512
        return cls(transformer_dir, pooling, int(max_len))


def require_onnx_extra() -> None:
    MissingExtra.require("onnx", ("onnx", "onnxruntime", "platformdirs"), "GRADER_BACKEND=onnx", field="backend")


def _read_json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cached_model_dir(model_dir: Path, cache_dir: Path) -> Path:
    """Where the quantized export of ``model_dir`` lives: one folder per weights and recipe."""
    return cache_dir / f"{model_dir.name}-{weights_hash(model_dir)}-{RECIPE}"


def prepare_onnx_model(
    model_dir: Path, cache_dir: Path, force: bool = False, progress: Callable[[str], None] = _stderr
) -> tuple[Path, bool]:
    """The quantized ONNX file for ``model_dir``, exported now if it is not cached: (path, exported)."""
    require_onnx_extra()
    target = cached_model_dir(model_dir, cache_dir)
    if (target / QUANTIZED_FILE).is_file() and not force:
        return target / QUANTIZED_FILE, False
    progress(f"exporting {model_dir.name} to ONNX 8-bit in {target} (once; about 10-30 s)...")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Build in a scratch folder beside the target and rename it into place, so a crash or a
    # concurrent process never leaves (or reads) a half-written model.
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".export-") as scratch:
        work = Path(scratch)
        layout = ModelLayout.read(model_dir)
        _export_transformer(layout.transformer_dir, work / "model.onnx")
        _quantize(work / "model.onnx", work / QUANTIZED_FILE)
        (work / "model.onnx").unlink()
        manifest = {"source": str(model_dir), "weights_hash": weights_hash(model_dir), "recipe": RECIPE}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
        target.chmod(0o755)  # mkdtemp made it private; the export holds nothing secret
        work.mkdir()  # TemporaryDirectory removes its (now empty) folder on exit
    progress(f"ONNX model ready: {target / QUANTIZED_FILE}")
    return target / QUANTIZED_FILE, True


def _export_transformer(transformer_dir: Path, out: Path) -> None:
    """Export the transformer as a graph over texts packed end to end (``grader.encoder.packed_layout``).

    Inputs are ``input_ids``, ``owner`` (each piece's text) and, if the model takes them, ``position_ids``;
    the graph builds the block-diagonal attention mask from ``owner``, so one text is a pack of one.
    """
    import inspect

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # Eager attention traces to plain MatMul/Softmax ops that quantize and run everywhere.
    model = AutoModel.from_pretrained(str(transformer_dir), attn_implementation="eager").eval()
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in _INPUTS if n in accepted or n == "owner"]
    types = "token_type_ids" in accepted

    class PackedLastHiddenState(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            feed = dict(zip(names, inputs))
            owner = feed.pop("owner")
            # Additive (batch, 1, L, L) mask: eager attention adds a 4-D mask to the scores as it is.
            same = (owner[:, :, None] == owner[:, None, :])[:, None]
            feed["attention_mask"] = torch.where(same, 0.0, torch.finfo(torch.float32).min)
            if types:
                feed["token_type_ids"] = torch.zeros_like(feed["input_ids"])
            return self.inner(**feed).last_hidden_state

    ids, positions, owner = (torch.from_numpy(a)[None] for a in packed_layout([[101, 7, 8, 9, 102], [101, 5, 102]]))
    example = {"input_ids": ids, "position_ids": positions, "owner": owner}
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer warnings are about shape checks that are constant for encoder-only models.
        warnings.simplefilter("ignore")
        # The TorchScript exporter (dynamo=False) needs no onnxscript and exports in ~5 s.
        torch.onnx.export(
            PackedLastHiddenState(model),
            tuple(example[n] for n in names),
            str(out),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: axes for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )


def _quantize(source: Path, out: Path) -> None:
    """Replace every MatMul by a constant weight with onnxruntime's weight-only 8-bit ``MatMulNBits``.

    Weights are stored as uint8 codes per block of ``WEIGHT_BLOCK`` input rows (scale and zero point per
    block and output column); ``accuracy_level=4`` runs the product in int8 with each row's activations
    quantized on their own, so a text's vector does not depend on what else is in the run. The
    word-embedding table stays fp32.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    quantized: dict[str, list[str]] = {}
    nodes = []
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        if weight.name not in quantized:
            arrays = _int8_blocks(numpy_helper.to_array(weight), WEIGHT_BLOCK)
            names = [f"{weight.name}_{part}" for part in ("q8", "scales", "zero_points")]
            graph.initializer.extend(numpy_helper.from_array(a, n) for a, n in zip(arrays, names))
            quantized[weight.name] = names
        rows, cols = weight.dims
        nodes.append(
            helper.make_node(
                "MatMulNBits", [node.input[0], *quantized[weight.name]], list(node.output), name=node.name,
                domain="com.microsoft", K=rows, N=cols, bits=8, block_size=WEIGHT_BLOCK, accuracy_level=4,
            )
        )  # fmt: skip
    read = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name in read]  # the fp32 weights now read by no node go
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out))


def _int8_blocks(weight: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (K, N) weight as 8-bit ``MatMulNBits`` stores it: codes (N, blocks, block), scales, zero points (N, blocks).

    Asymmetric min/max per block of one column, the range widened to hold 0 (as onnxruntime's own quantizer does).
    """
    rows, cols = weight.shape
    blocks = -(-rows // block)
    grouped = np.pad(weight.astype(np.float32), ((0, blocks * block - rows), (0, 0))).T.reshape(cols, blocks, block)
    low, high = np.minimum(grouped.min(axis=2), 0), np.maximum(grouped.max(axis=2), 0)
    scales = ((high - low) / 255).astype(np.float32)
    step = np.where(scales > 0, scales, 1)
    zero = np.clip(np.round(-low / step), 0, 255)
    codes = np.clip(np.round(grouped / step[..., None]) + zero[..., None], 0, 255)
    return codes.astype(np.uint8), scales, zero.astype(np.uint8)


class OnnxEncoder(PassReader):
    """The ``Encoder`` interface over an onnxruntime session of the quantized model."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        progress: Callable[[str], None] = _stderr,
    ) -> None:
        require_onnx_extra()
        import onnxruntime as ort

        source = Path(model_path) if model_path else packaged_model_path()
        if not (source / "tokenizer.json").is_file():
            raise GraderError(
                f"the ONNX backend needs {source}/tokenizer.json (a fast tokenizer); set GRADER_BACKEND=torch",
                field="model_path",
            )
        self.layout = ModelLayout.read(source)
        self.path, self.exported = prepare_onnx_model(source, cache_dir or default_cache_dir(), progress=progress)
        # The fingerprint tells backends apart: a distinct name, and the hash of the quantized file.
        self.name = ("all-MiniLM-L6-v2" if model_path is None else source.name) + "+onnx-int8"
        self.weights_hash = weights_hash(self.path.parent, (QUANTIZED_FILE,))
        self.source = source
        self.batch_size = ONNX_BATCH
        self.calls = 0
        self._lock = Lock()

        self._pieces = untruncated_tokenizer((source / "tokenizer.json").read_text(encoding="utf-8"))
        self.tokenizer = self._pieces  # benchmarks count tokens with it
        self.max_seq_length = self.layout.max_seq_length
        self.pooling = self.layout.pooling
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        # Idle worker threads sleep instead of spinning: on a shared CPU (the API beside other work)
        # spinning threads steal the cores they wait for; measured 1.3-1.6x throughput here.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self.session.get_inputs()]
        if "position_ids" in self._inputs:  # a model without position inputs cannot give packed texts their own
            self._forward_packed = self._read_packed
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def _forward(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """One unpadded session run: the pooled, normalised sentence vector and the token vectors."""
        return self._read_packed([ids])[0]

    def _read_packed(self, pieces: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One session run over texts laid end to end, each attending only to itself, with its own positions.

        The same contract as ``Encoder._packed_forward``: per text, the (sentence vector, token vectors) its
        own run would give, for the cost of one run over their joint length.
        """
        ids, positions, owner = packed_layout(pieces)
        feed = {"input_ids": ids[None], "position_ids": positions[None], "owner": owner[None]}
        hidden = self.session.run(None, {n: feed[n] for n in self._inputs})[0][0]
        return [
            (unit_rows(_pool(part[None], np.ones((1, len(part))), self.pooling))[0], part)
            for part in unpacked(hidden, pieces)
        ]


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """sentence-transformers' Pooling module, in numpy."""
    if mode == "cls":
        return hidden[:, 0]
    weights = mask[..., None].astype(np.float32)
    if mode == "max":
        return np.where(weights > 0, hidden, -1e9).max(axis=1)
    lengths = np.clip(weights.sum(axis=1), 1e-9, None)
    summed = (hidden * weights).sum(axis=1)
    return summed / (np.sqrt(lengths) if mode == "mean_sqrt_len" else lengths)
