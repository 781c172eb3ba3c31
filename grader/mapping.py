"""The default score: a fitted probability per key point that it is stated, then a monotone map to the score.

A grade is decided key point by key point. For each key point the judge (``grader.score``) measures a
few things about its *accepted evidence* only: the span the guards let stand (not a restated
question, not an instruction to the grader, not a filler window, not a clause that denies the point).
Text that makes no key point is never accepted evidence, so appending it cannot raise a feature; a
maximum over all words of the answer could.

``ScoreMapping`` turns those features into a probability that the point is stated, with non-negative
weights (more evidence never lowers it), sums weight x probability into an expected coverage and maps
that through an isotonic (monotone) curve to the share of max_score that human graders give. The
guards' hard effects come after the mapping (``grader.score.mapped_points``): zero flags give 0, a contradicted
point's weight is taken off, a bare list of terms stays at or below partial credit.

The shipped artefact (``grader/mappings/evidence.json``) is fitted by ``python -m eval.fit_mapping`` on
SAF training, our graded examples and generated attacks, never on a set the report measures it on.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from .errors import GraderError

# Per key point, each on 0..1, each computed from the accepted evidence only (grader.score).
POINT_FEATURES = ("similarity", "relative", "alignment", "words", "credit")
POINT_FEATURE_DOC = {
    "similarity": "best cosine similarity of an accepted evidence span to the key point (0 without one)",
    "relative": "that similarity above the question's own similarity to the key point, rescaled to 0..1",
    "alignment": "share of the key point's words (beyond the question's) the evidence span expresses, by token vectors",
    "words": "share of the key point's content-word stems (beyond the question's) the evidence span uses",
    "credit": "the threshold rule's credit: 1 covered, 0.5-1 partial, 0 missing",
}
SHIPPED_PATH = Path(__file__).with_name("mappings") / "evidence.json"


class ScoreMapping(BaseModel):
    """``p = sigmoid(intercept + coef . x)`` per key point (coef >= 0), then ``share = isotonic(sum w p / sum w)``."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    version: int = Field(1, ge=1)
    fitted_on: str = Field(description="the data the mapping was fitted on; never a set it is reported on")
    method: str
    features: list[str] = Field(min_length=1)
    coef: list[float] = Field(description="one non-negative weight per feature")
    intercept: float
    knots_x: list[float] = Field(min_length=2, description="expected coverage at each isotonic breakpoint")
    knots_y: list[float] = Field(min_length=2, description="share of max_score at each breakpoint (non-decreasing)")
    notes: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _monotone(self) -> "ScoreMapping":
        if len(self.coef) != len(self.features):
            raise ValueError(f"coef needs one value per feature ({len(self.features)})")
        if any(c < 0 for c in self.coef):
            raise ValueError("every coef must be >= 0: more evidence must never lower a key point's probability")
        unknown = sorted(set(self.features) - set(POINT_FEATURES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {', '.join(POINT_FEATURES)}")
        if len(self.knots_x) != len(self.knots_y) or np.any(np.diff(self.knots_x) < 0) or np.any(np.diff(self.knots_y) < 0):
            raise ValueError("knots_x and knots_y need equal length and must both be non-decreasing")
        return self

    @property
    def name(self) -> str:
        """How the fingerprint names this mapping."""
        return f"{self.id}@v{self.version}"

    def columns(self) -> list[int]:
        return [POINT_FEATURES.index(f) for f in self.features]

    def probability(self, point_features: np.ndarray) -> np.ndarray:
        """(K,) or (n, K) probability that each key point is stated, from rows shaped (..., len(POINT_FEATURES))."""
        x = np.asarray(point_features, dtype=float)[..., self.columns()]
        return 1.0 / (1.0 + np.exp(-(self.intercept + x @ np.asarray(self.coef))))

    def share(self, expected_coverage: np.ndarray | float) -> np.ndarray:
        """Share of max_score (0..1) for an expected coverage (weighted mean probability)."""
        return np.clip(np.interp(expected_coverage, self.knots_x, self.knots_y), 0.0, 1.0)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n", encoding="utf-8")


def read_artefact(model: type[BaseModel], path: Path | str, what: str, field: str, hint: str):
    """A JSON artefact validated as ``model``; a missing or malformed file says which, where and how to fix it."""
    try:
        return model.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GraderError(f"{what} file {path} not found; {hint}", field=field) from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise GraderError(f"{what} file {path}: {where}: {first['msg']}", field=field) from None


@lru_cache(maxsize=8)
def load_mapping(path: Path | str) -> ScoreMapping:
    """Read a mapping artefact (once per path and process: every grader of a process shares it)."""
    return read_artefact(
        ScoreMapping, path, "score mapping", "score_mapping",
        "set GRADER_SCORE_MAPPING to 'evidence' (the shipped one), 'linear', or the path of a file written by "
        "`python -m eval.fit_mapping`",
    )
