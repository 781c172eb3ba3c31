"""The torch encoder's passes as TorchScript graphs, so a pass runs without holding Python's GIL.

Eager torch dispatches each of a pass's few hundred operators from Python and takes the GIL for every
one. While the grader judges one answer in Python, the encoder's lanes reading the next answers wait
for the GIL between operators: on 2 cores grading reached only 0.7x the answers per second of the
bare packed pass. A traced graph runs the same operators from C++ with the GIL released, so judging
and reading overlap (benchmarks/results/load-pooled.md).

A graph is traced on first use and kept only if it gives eager's bits exactly on probe inputs of three
lengths; it runs with the graph executor's optimisations off, so it executes the traced operators as
recorded (no fusion or re-specialisation that could move a last digit). Another model, or a library
version whose trace does not generalise, keeps the eager module: slower, same vectors.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from threading import Lock

import torch

log = logging.getLogger(__name__)


class PackedPass(torch.nn.Module):
    """The transformer over texts laid end to end: (ids, (1, 1, L, L) bool mask, positions) -> token vectors."""

    def __init__(self, transformer: torch.nn.Module, token_types: bool) -> None:
        super().__init__()
        self.transformer = transformer
        self.token_types = token_types

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.token_types else {}
        return self.transformer(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, **extra
        ).last_hidden_state


class SinglePass(torch.nn.Module):
    """The sentence-transformers pipeline over one text: ids -> (sentence embedding, token vectors).

    Holds the pipeline's steps (transformer, pooling, normalisation), not the SentenceTransformer, whose
    deprecated properties the tracer would read (and log) while it records the graph.
    """

    def __init__(self, steps: Sequence[torch.nn.Module], token_types: bool) -> None:
        super().__init__()
        self.steps = torch.nn.ModuleList(steps)
        self.token_types = token_types

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if self.token_types:
            features["token_type_ids"] = torch.zeros_like(input_ids)
        for step in self.steps:
            features = step(features)
        return features["sentence_embedding"], features["token_embeddings"]


def _outputs(value) -> tuple[torch.Tensor, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def trace_or_eager(module: torch.nn.Module, probes: Sequence[tuple[torch.Tensor, ...]]) -> tuple[Callable, bool]:
    """``module`` traced (and True) when the graph gives eager's exact outputs on every probe; else the module itself."""
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice and tracer hints
            graph = torch.jit.trace(module, probes[0], check_trace=False)
            with torch.jit.optimized_execution(False):
                same = all(
                    len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
                    for a, b in ((_outputs(graph(*p)), _outputs(module(*p))) for p in probes)
                )
    except Exception as err:  # noqa: BLE001 - a model or library the tracer cannot follow runs eagerly
        log.warning("encoder pass not traced (%s: %s); running it eagerly", type(err).__name__, err)
        return module, False
    if not same:
        log.warning("traced encoder pass differs from the eager one on a probe; running it eagerly")
        return module, False
    return graph, True


class LazyPass:
    """A pass traced on its first call (once, whichever lane calls first), then called without the GIL."""

    def __init__(self, module: torch.nn.Module, probes: Callable[[], Sequence[tuple[torch.Tensor, ...]]]) -> None:
        self.module = module
        self._probes = probes
        self._run: Callable | None = None
        self.traced = False
        self._lock = Lock()

    def __call__(self, *inputs: torch.Tensor):
        if self._run is None:
            with self._lock:
                if self._run is None:
                    self._run, self.traced = trace_or_eager(self.module, self._probes())
        with torch.inference_mode(), torch.jit.optimized_execution(False):  # thread-local: each lane sets its own
            return self._run(*inputs)
