"""What a grade is made of: pydantic models returned by the library, the CLI and the API alike."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["covered", "partial", "missing", "contradicted"]


class Evidence(BaseModel):
    """A span of the answer (``answer[start:end] == text``) and its similarity to the key point."""

    text: str
    start: int
    end: int
    similarity: float


class KeyPointVerdict(BaseModel):
    id: str
    text: str
    weight: float
    status: Status
    similarity: float = Field(
        description="similarity of the evidence to the key point; for a missing point, of the nearest answer span"
    )
    credit: float = Field(
        description="share of the key point's weight earned, 0..1; -1 when the answer states a listed contradiction of it"
    )
    alignment: float = Field(
        0.0,
        description="share of the key point's wording (beyond the question's) that the answer expresses, 0..1: each "
        "word of the key point matched to its nearest word of the answer by the model's contextual word vectors",
    )
    probability: float | None = Field(
        None,
        description="fitted probability that the answer states the key point, from its accepted evidence "
        "(the default score mapping); null under the linear mapping",
    )
    features: dict[str, float] = Field(
        default_factory=dict,
        description="what the score mapping reads, measured on the accepted evidence only (grader.mapping.POINT_FEATURES)",
    )
    evidence: Evidence | None = Field(None, description="the span that supports the status")
    contradiction: Evidence | None = Field(None, description="the span that denies the key point, if any")


class MisconceptionHit(BaseModel):
    text: str
    penalty: float
    evidence: Evidence


class Fingerprint(BaseModel):
    """Everything that determines a grade, so it can be reproduced and audited."""

    model: str
    model_hash: str
    rubric_id: str
    rubric_version: int
    rubric_hash: str
    thresholds: dict[str, float]
    calibration: str
    grader_version: str
    span_vectors: str = "separate"  # how span vectors were made (GRADER_SPAN_VECTORS); results before it: separate


class GradeResult(BaseModel):
    rubric_id: str
    score: float
    max_score: float
    coverage: float = Field(description="weighted share of key points covered, 0..1")
    key_points: list[KeyPointVerdict]
    missing: list[str] = Field(description="ids of key points the answer does not make")
    contradicted: list[str] = Field(default_factory=list, description="ids of key points the answer denies")
    misconceptions: list[MisconceptionHit] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list, description="why flags were raised, for a person")
    confidence: float
    needs_review: bool
    fingerprint: Fingerprint
