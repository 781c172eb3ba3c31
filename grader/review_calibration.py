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

# How far reviews reach. The neighbours' vote weighs reviewed answers exp((cosine - best) / VOTE_TAU), so the
# nearest ones decide it; how much of it is trusted grows with the nearest reviewed answer's cosine, from 0 at
# NEAR_FROM to MOST_TRUST at NEAR_TO and above. Trust read from the *nearest* answer, not a sum over all of
# them, keeps an answer far from every reviewed one where the machine put it, however many answers were
# reviewed: another question's answers (Mohler) are lifted 0.03 of full marks on average with 10 reviews per
# question, against 0.12 under the summed weights of the previous pull. Chosen on SAF training
# (eval/review_curve.py, 2026-12-06); Mohler unseen.
VOTE_TAU = 0.1
NEAR_FROM = 0.4
NEAR_TO = 0.8
MOST_TRUST = 0.8


def pulled_towards_reviews(
    machine: np.ndarray,
    sims: np.ndarray,
    human: np.ndarray,
    vote_tau: float = VOTE_TAU,
    near_from: float = NEAR_FROM,
    near_to: float = NEAR_TO,
    most_trust: float = MOST_TRUST,
) -> np.ndarray:
    """Machine values (n,) pulled towards the human values (m,) of reviewed answers, by cosine ``sims`` (n, m).

    The vote is a softmax of the cosines at temperature ``vote_tau`` (an answer 0.1 less similar than the
    nearest weighs e^-1 of it); the pull takes ``trust`` of the way to it, a ramp of the nearest cosine:
    none below ``near_from``, ``most_trust`` from ``near_to`` on.
    """
    machine = np.asarray(machine, dtype=float)
    sims = np.asarray(sims, dtype=float).reshape(len(machine), -1)
    if sims.shape[1] == 0:
        return machine
    nearest = sims.max(axis=1)
    w = np.exp((sims - nearest[:, None]) / vote_tau)
    vote = (w @ np.asarray(human, dtype=float)) / w.sum(axis=1)
    trust = most_trust * np.clip((nearest - near_from) / (near_to - near_from), 0.0, 1.0)
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
    vote_tau: float = Field(VOTE_TAU, gt=0, description="softmax temperature of the neighbours' vote over cosines")
    near_from: float = Field(NEAR_FROM, ge=-1, lt=1, description="nearest cosine below which reviews do not pull")
    near_to: float = Field(NEAR_TO, gt=-1, le=1, description="nearest cosine from which the vote is trusted most")
    most_trust: float = Field(MOST_TRUST, ge=0, le=1, description="the largest share of the way to the vote")
    mapping: ScoreMapping = Field(description="the base mapping with knots_x / knots_y refit on reviews")
    neighbours: dict[str, ReviewedAnswers] = Field(default_factory=dict, description="rubric id -> its reviewed answers")
    notes: dict[str, object] = Field(default_factory=dict)
    _matrices: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _not_the_retired_pull(cls, data: object) -> object:
        if isinstance(data, dict) and {"tau", "shrink"} & data.keys():
            raise ValueError(
                "tau / shrink: this artefact uses the retired summed-weights pull; fit it again with "
                "`grader calibrate --from-reviews` (the pull now reads the nearest reviewed answer)"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ReviewCalibration:
        if self.near_from >= self.near_to:
            raise ValueError("near_from must be below near_to")
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
        ramp = (self.vote_tau, self.near_from, self.near_to, self.most_trust)
        return lambda share: float(pulled_towards_reviews(np.array([share]), sims[None, :], shares, *ramp)[0])

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
