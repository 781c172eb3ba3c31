"""Reviews refit the default score: the artefact ``grader calibrate --from-reviews`` writes, and how it grades.

A review calibration keeps the evidence mapping's per-key-point logistic (``grader.mapping``) and replaces
only its isotonic curve (expected coverage -> share of max_score) by one fitted on reviewed results. It
also holds the reviewed answers themselves, per rubric, as references: an answer close to a reviewed answer
is pulled towards that answer's human share (``pulled_towards_reviews``). Both act on the mapped share
*before* the guards' hard effects (``grader.score.mapped_points``): zero flags still give 0, a contradicted
point's weight still comes off, a bare list of terms stays under its ceiling. An answer stating no key point
gets no share from the curve; only its reviewed neighbours can lift it (people graded answers like it).

Turned on with ``GRADER_REVIEW_CALIBRATIONS`` (artefact paths); an artefact fitted on one rubric wins over
a global one for that rubric, and the fingerprint of every grade it touched names it (``name``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr, model_validator

from .errors import GraderError
from .mapping import ScoreMapping, read_artefact

# Weight of a reviewed answer: exp((cosine - 1) / TAU); trust in the neighbours' vote: w / (w + SHRINK).
# Chosen on SAF training (eval/review_curve.py: 0.2 beat 0.05, 0.1, 0.3 and 0.5 at every k), Mohler unseen.
TAU = 0.2
SHRINK = 1.0


def pulled_towards_reviews(
    machine: np.ndarray, sims: np.ndarray, human: np.ndarray, tau: float = TAU, shrink: float = SHRINK
) -> np.ndarray:
    """Machine values (n,) pulled towards the human values (m,) of reviewed answers, by cosine ``sims`` (n, m).

    Each reviewed answer votes with weight ``exp((sim - 1) / tau)``: a near-duplicate weighs 1, an answer
    at cosine 0.6 about 0.14. The vote is trusted ``w / (w + shrink)`` of the total weight, so one identical
    reviewed answer moves a grade halfway to its human score and several close ones most of the way.
    """
    machine = np.asarray(machine, dtype=float)
    sims = np.asarray(sims, dtype=float).reshape(len(machine), -1)
    if sims.shape[1] == 0:
        return machine
    w = np.exp((sims - 1.0) / tau)
    total = w.sum(axis=1)
    vote = (w @ np.asarray(human, dtype=float)) / total
    trust = total / (total + shrink)
    return (1.0 - trust) * machine + trust * vote


def encode_vectors(vectors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode("ascii")


class ReviewedAnswers(BaseModel):
    """The reviewed answers of one rubric: their human shares and embeddings (base64 little-endian float32)."""

    shares: list[float] = Field(description="human score / max_score of each reviewed answer, 0..1")
    vectors: str = Field(description="base64 of the (len(shares), dim) float32 unit embeddings, row by row")

    def matrix(self, dim: int) -> np.ndarray:
        raw = base64.b64decode(self.vectors, validate=True)
        return np.frombuffer(raw, dtype="<f4").reshape(len(self.shares), dim)


class ReviewCalibration(BaseModel):
    """A versioned artefact: the evidence mapping with its curve refit on reviews, and the reviewed answers."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    version: int = Field(1, ge=1)
    rubric_id: str | None = Field(None, description="the one rubric it applies to; null: every rubric (global)")
    fitted_on: str
    base_mapping: str = Field(description="the mapping whose per-key-point logistic is kept (name@version)")
    model_hash: str = Field(description="weights hash of the encoder that embedded the reviewed answers")
    dim: int = Field(ge=1)
    tau: float = Field(TAU, gt=0)
    shrink: float = Field(SHRINK, gt=0)
    mapping: ScoreMapping = Field(description="the base mapping with knots_x / knots_y refit on reviews")
    neighbours: dict[str, ReviewedAnswers] = Field(default_factory=dict, description="rubric id -> its reviewed answers")
    notes: dict[str, object] = Field(default_factory=dict)
    _matrices: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ReviewCalibration:
        for rubric_id, answers in self.neighbours.items():
            if any(not 0.0 <= s <= 1.0 for s in answers.shares):
                raise ValueError(f"neighbours.{rubric_id}.shares: every share must be within 0..1")
            try:
                answers.matrix(self.dim)
            except (ValueError, binascii.Error):
                raise ValueError(
                    f"neighbours.{rubric_id}.vectors: not base64 of {len(answers.shares)} x {self.dim} float32 values"
                ) from None
        return self

    @property
    def name(self) -> str:
        """How the fingerprint names this artefact."""
        return f"{self.id}@v{self.version}"

    def pull(self, rubric_id: str, answer_vector: np.ndarray | None):
        """``share -> share`` towards the rubric's reviewed answers near ``answer_vector``; None without any."""
        reviewed = self.neighbours.get(rubric_id)
        if reviewed is None or not reviewed.shares or answer_vector is None:
            return None
        if rubric_id not in self._matrices:  # decoded once per artefact and rubric, not per answer
            self._matrices[rubric_id] = reviewed.matrix(self.dim)
        sims = self._matrices[rubric_id] @ np.asarray(answer_vector, dtype=np.float32)
        shares = np.asarray(reviewed.shares)
        return lambda share: float(pulled_towards_reviews(np.array([share]), sims[None, :], shares, self.tau, self.shrink)[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(), indent=1) + "\n", encoding="utf-8")


def load_review_calibration(path: Path | str) -> ReviewCalibration:
    return read_artefact(
        ReviewCalibration, path, "review calibration", "review_calibrations",
        "list files written by `grader calibrate --from-reviews` in GRADER_REVIEW_CALIBRATIONS, or unset it",
    )


class ReviewCalibrations:
    """The review calibrations in force: per rubric, the artefact fitted on it, else the global one."""

    def __init__(self, artefacts: Sequence[ReviewCalibration], model_hash: str) -> None:
        self.by_rubric: dict[str, ReviewCalibration] = {}
        self.default: ReviewCalibration | None = None
        for artefact in artefacts:
            if artefact.model_hash != model_hash:
                raise GraderError(
                    f"review calibration {artefact.name} was fitted with another embedding model ({artefact.model_hash}, "
                    f"this grader's is {model_hash}); fit it again with `grader calibrate --from-reviews`",
                    field="review_calibrations",
                )
            scope = artefact.rubric_id
            if (self.by_rubric.get(scope) if scope else self.default) is not None:
                raise GraderError(
                    f"two review calibrations apply to {f'rubric {scope!r}' if scope else 'every rubric'}; keep one",
                    field="review_calibrations",
                )
            if scope:
                self.by_rubric[scope] = artefact
            else:
                self.default = artefact

    def __bool__(self) -> bool:
        return bool(self.by_rubric) or self.default is not None

    def for_rubric(self, rubric_id: str) -> ReviewCalibration | None:
        return self.by_rubric.get(rubric_id, self.default)

    def names(self) -> list[str]:
        return sorted(a.name for a in [*self.by_rubric.values(), *([self.default] if self.default else [])])
