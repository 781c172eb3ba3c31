"""Calibration: from what the matcher measured to a score on the rubric's scale, fitted on human grades.

Without calibration a score is weighted coverage x max_score. Human graders are more lenient
than that at the top and harsher at the bottom, and one similarity band means different things
for a one-sentence reference and a ten-point rubric. A calibration artefact is a versioned JSON
file (written by ``eval.calibration``) holding a linear score over a few features of a grade,
followed by a monotone (isotonic) map of that score to a share of max_score. It is loaded from
``settings.calibration_path`` and named in every fingerprint, so a grade says which mapping made it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, model_validator

from .errors import GraderError
from .mapping import read_artefact
from .result import KeyPointVerdict

# Features of one grade, all on a 0..1 scale and all computed from the key-point verdicts.
FEATURES = (
    "coverage", "similarity_mean", "similarity_min", "similarity_max", "relative_mean", "word_share", "alignment",
)
FEATURE_DOC = {
    "coverage": "weighted share of key-point credit (the uncalibrated score / max_score)",
    "similarity_mean": "weighted mean over key points of the best span similarity",
    "similarity_min": "lowest key-point similarity (the point the answer misses most)",
    "similarity_max": "highest key-point similarity (the point the answer makes best)",
    "relative_mean": "weighted mean of each key point's similarity above the question's own similarity to it",
    "word_share": "weighted mean of the share of each key point's content words (stemmed) that the answer uses",
    "alignment": "weighted mean of each key point's token alignment (KeyPointVerdict.alignment), 0 where contradicted",
}


def features_from(
    verdicts: Sequence[KeyPointVerdict],
    coverage: float,
    question_similarity: Sequence[float] | None = None,
    word_share: Sequence[float] | None = None,
) -> dict[str, float]:
    """The calibration features of one grade.

    ``question_similarity`` is each key point's similarity to the question: restating the
    question already earns that much, so similarity above it is what the answer added
    (``relative_mean``); where it is not known, the feature falls back to ``similarity_mean``.
    ``word_share`` is each key point's share of content words the answer uses (``grader.match.word_share``),
    a lexical signal beside the embeddings; where it is not known it also falls back to ``similarity_mean``.
    """
    sims = np.clip(np.array([v.similarity for v in verdicts], dtype=float), 0.0, 1.0)
    weights = np.array([v.weight for v in verdicts], dtype=float)
    # A denied point is not made however many of its words the denial repeats (keeping them would have
    # raised Mohler transfer 0.592 -> 0.618 but lowered SAF cv 0.748 -> 0.739 and paid negated answers).
    aligned = np.array([0.0 if v.status == "contradicted" else v.alignment for v in verdicts], dtype=float)
    if question_similarity is None:
        relative = sims
    else:
        base = np.clip(np.asarray(question_similarity, dtype=float), 0.0, 0.95)
        relative = np.clip((sims - base) / (1.0 - base), 0.0, 1.0)
    return {
        "coverage": float(coverage),
        "similarity_mean": float(np.average(sims, weights=weights)),
        "similarity_min": float(sims.min()),
        "similarity_max": float(sims.max()),
        "relative_mean": float(np.average(relative, weights=weights)),
        "word_share": float(np.average(sims if word_share is None else np.asarray(word_share, float), weights=weights)),
        "alignment": float(np.average(aligned, weights=weights)),
    }


def features_of(result) -> dict[str, float]:
    """Features of a ``GradeResult`` (as stored), without the question similarities it does not keep."""
    return features_from(result.key_points, result.coverage)


class Calibration(BaseModel):
    """A fitted mapping: ``share = isotonic(intercept + sum(coef * (x - mean) / scale))``, clipped to 0..1.

    With no isotonic knots the linear score itself, clipped, is the share of max_score.
    """

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    version: int = Field(1, ge=1)
    fitted_on: str = Field(description="the data set (and split) the mapping was fitted on")
    method: str = Field(description="how it was fitted, e.g. ridge+isotonic")
    features: list[str] = Field(min_length=1)
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    knots_x: list[float] = Field(default_factory=list, description="isotonic breakpoints of the linear score")
    knots_y: list[float] = Field(default_factory=list, description="share of max_score at each breakpoint")
    notes: dict[str, object] = Field(default_factory=dict, description="fit details: rows, CV metrics, date")

    @model_validator(mode="after")
    def _consistent(self) -> "Calibration":
        n = len(self.features)
        if not len(self.mean) == len(self.scale) == len(self.coef) == n:
            raise ValueError(f"mean, scale and coef need one value per feature ({n})")
        if len(self.knots_x) != len(self.knots_y) or any(np.diff(self.knots_x) < 0):
            raise ValueError("knots_x and knots_y need equal length and knots_x must be increasing")
        return self

    @property
    def name(self) -> str:
        """How the fingerprint names this mapping."""
        return f"{self.id}@v{self.version}"

    def linear(self, rows: np.ndarray) -> np.ndarray:
        x = (np.asarray(rows, dtype=float) - np.array(self.mean)) / np.array(self.scale)
        return self.intercept + x @ np.array(self.coef)

    def share(self, rows: np.ndarray) -> np.ndarray:
        """Share of max_score (0..1) for feature rows shaped (n, len(features))."""
        z = self.linear(rows)
        if self.knots_x:
            z = np.interp(z, self.knots_x, self.knots_y)
        return np.clip(z, 0.0, 1.0)

    def share_of(self, features: Mapping[str, float]) -> float:
        return float(self.share(np.array([[features[f] for f in self.features]]))[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n", encoding="utf-8")


def load_calibration(path: Path) -> Calibration:
    """Read an artefact the grader can apply; a missing or malformed file says which and how to fix it."""
    calibration = read_artefact(
        Calibration, path, "calibration", "calibration_path",
        "set GRADER_CALIBRATION_PATH to an artefact from eval/calibration/ or unset it for the default mapping",
    )
    unknown = sorted(set(calibration.features) - set(FEATURES))
    if unknown:
        raise GraderError(
            f"calibration file {path}: the grader cannot compute features {unknown}; known: {', '.join(FEATURES)}",
            field="calibration_path",
        )
    return calibration
