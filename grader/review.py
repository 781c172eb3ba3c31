"""Human reviews of stored grades: what a reviewer may say about a result, and how far grader and people agree.

A review sits beside the machine grade and never replaces it: the stored result keeps the score,
verdicts and fingerprint the grader gave. A result can be reviewed again; every review stays
readable and the latest one counts. The reviewer is the name of the API key that wrote the review
(``GRADER_API_KEYS=name:key``), never the key itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sklearn.metrics import cohen_kappa_score

from .errors import GraderError, ReviewError, UnknownRubric
from .result import GradeResult, KeyPointVerdict, Status

MAX_COMMENT_CHARS = 5000
MAX_QUEUE_PAGE = 200


class ReviewInput(BaseModel):
    """What a reviewer says about one result: a score, optionally each key point's status and a comment."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"score": 3.5, "key_points": {"normalizes-activations": "covered"}, "comment": "clear"}]},
    )

    score: float = Field(description="the human score, 0..max_score of the result")
    key_points: dict[str, Status] = Field(
        default_factory=dict, description="key point id -> covered | partial | missing | contradicted, as the reviewer sees it"
    )
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)

    @field_validator("comment")
    @classmethod
    def _no_nul(cls, comment: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL: refused here on every store, so a review never fails inside one.
        if comment is not None and "\x00" in comment:
            raise ValueError(f"comment has a NUL character (\\u0000) at offset {comment.index(chr(0))}; remove it")
        return comment


class Review(ReviewInput):
    reviewer: str = Field(description="the name of the API key (or CLI user) that wrote the review")
    created_at: datetime


def check_review(review: ReviewInput, result: GradeResult) -> None:
    """Refuse a review that does not fit its result, naming the field: score range, key point ids."""
    if not 0 <= review.score <= result.max_score or not np.isfinite(review.score):
        raise ReviewError(
            f"score {review.score} is outside 0..{result.max_score:g}, the range of this result's rubric", field="score"
        )
    known = {kp.id for kp in result.key_points}
    for kp_id in review.key_points:
        if kp_id not in known:
            raise ReviewError(
                f"key point {kp_id!r} is not in this result's rubric; its key points are {', '.join(sorted(known))}",
                field=f"key_points.{kp_id}",
            )


class ReviewedResult(BaseModel):
    """A stored result as a reviewer sees it; ``review`` is the latest review (None when unreviewed)."""

    id: str
    rubric_id: str
    rubric_version: int | None = Field(None, description="the rubric version the result was graded with")
    answer: str
    score: float
    max_score: float
    coverage: float
    confidence: float
    flags: list[str]
    missing: list[str]
    key_points: list[KeyPointVerdict]
    review: Review | None = None

    @classmethod
    def of(cls, result_id: str, answer: str, result: GradeResult, review: Review | None = None) -> "ReviewedResult":
        fields = {name: getattr(result, name) for name in ("rubric_id", "score", "max_score", "coverage", "confidence", "flags", "missing", "key_points")}
        version = result.fingerprint.rubric_version
        return cls(id=result_id, answer=answer, review=review, rubric_version=version, **fields)


class ReviewQueue(BaseModel):
    items: list[ReviewedResult] = Field(description="unreviewed results that need review, least confident first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


# -- queue cursors: the (confidence, id) of the last item of a page, opaque to clients ----------------


def encode_cursor(confidence: float, result_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([confidence, result_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        confidence, result_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(confidence), str(result_id)
    except (ValueError, TypeError, binascii.Error):
        raise GraderError(
            f"cursor {cursor[:40]!r} is not one this service issued; pass next_cursor from the previous page", field="cursor"
        ) from None


# -- agreement of machine and human scores ----------------------------------------------------------


class Agreement(BaseModel):
    """Machine vs human on reviewed results (the latest review of each)."""

    rubric_id: str | None = None
    count: int = Field(description="reviewed results compared")
    pearson: float | None = Field(description="Pearson correlation; null under 2 results or when either side is constant")
    qwk: float | None = Field(description="quadratic weighted kappa on whole points (quarters for a 0..1 scale)")
    mean_difference: float | None = Field(description="mean of machine minus human score: > 0, the grader is more lenient")


def qwk_levels(max_score: float) -> int:
    """Points of the scale kappa is computed on: whole points (0..max) or, for a 0..1 scale, quarters (as eval/metrics)."""
    return int(round(max_score)) if max_score >= 2 else 4


def agreement_of(machine: Sequence[float], human: Sequence[float], max_score: Sequence[float], rubric_id: str | None = None) -> Agreement:
    """Pearson, QWK (scores as shares of each result's max_score, on the largest scale's points) and mean difference."""
    m, h, top = (np.asarray(v, float) for v in (machine, human, max_score))
    if len(m) == 0:
        return Agreement(rubric_id=rubric_id, count=0, pearson=None, qwk=None, mean_difference=None)
    constant = len(m) < 2 or np.ptp(m) == 0 or np.ptp(h) == 0
    pearson = None if constant else round(float(np.corrcoef(m, h)[0, 1]), 4)
    levels = qwk_levels(float(top.max()))
    hl, ml = (np.clip(np.floor(v / top * levels + 0.5), 0, levels).astype(int) for v in (h, m))
    kappa = None
    if len(set(hl) | set(ml)) >= 2:
        kappa = round(float(cohen_kappa_score(hl, ml, weights="quadratic", labels=list(range(levels + 1)))), 4)
    return Agreement(
        rubric_id=rubric_id, count=len(m), pearson=pearson, qwk=kappa, mean_difference=round(float(np.mean(m - h)), 4)
    )


# -- picking what to review ----------------------------------------------------------------------------

# Weight of a difference in machine score (as a share of max_score) beside a difference in meaning (1 - cosine)
# when picks are spread out; 1.0 beat 0.25 and 0.5 on SAF training (eval/REVIEW_CURVE.md).
SCORE_SPREAD = 1.0
MAX_PICK_POOL = 2000  # most unreviewed results a pick considers (the least confident); their answers are encoded


def pick_informative(vectors: np.ndarray, shares: Sequence[float], n: int, score_spread: float = SCORE_SPREAD) -> list[int]:
    """Indices of ``n`` answers whose human grades teach the grader most, in the order to review them.

    A reviewed answer corrects the grades of the answers near it (``eval/review_curve.py``), so the picks
    should cover the answers, in what they say and in the score the grader gave them: farthest-first
    traversal over the distance ``(1 - cosine of the answers) + score_spread * |machine share difference|``,
    starting at the most central answer. Measured on answers no pick may take (eval/REVIEW_CURVE.md, held
    out), these picks, random picks and the least confident answers teach the default score about equally
    (within 0.01 on Mohler and SAF); they teach the plain-cosine baseline more than random picks do on SAF.
    """
    if n <= 0 or len(shares) == 0:
        return []
    v = np.asarray(vectors, float)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    share = np.asarray(shares, float)
    distance = (1.0 - v @ v.T) + score_spread * np.abs(share[:, None] - share[None, :])
    picked = [int(np.argmin(distance.mean(axis=1)))]
    nearest = distance[:, picked[0]].copy()
    while len(picked) < min(n, len(share)):
        nearest[picked] = -np.inf
        choice = int(np.argmax(nearest))
        picked.append(choice)
        nearest = np.minimum(nearest, distance[:, choice])
    return picked


# -- over a store (``grader.store.Store``; not imported here, the store imports this module) -------------


def informative_queue(store, encoder, rubric_id: str | None, flag: str | None, limit: int) -> ReviewQueue:
    """The ``limit`` unreviewed results worth reviewing most (``pick_informative``), as one page.

    ``encoder`` embeds the answers (``grader.encoder.Encoder``); the pool is the ``MAX_PICK_POOL`` least confident.
    """
    pool = sorted(store.unreviewed(rubric_id, flag), key=lambda r: (r.confidence, r.id))[:MAX_PICK_POOL]
    if not pool:
        return ReviewQueue(items=[], next_cursor=None)
    vectors = encoder.encode([r.answer for r in pool])
    picked = pick_informative(vectors, [r.score / r.max_score for r in pool], limit)
    return ReviewQueue(items=[pool[i] for i in picked], next_cursor=None)


def rubric_agreement(store, rubric_id: str) -> Agreement:
    """Agreement over a rubric's reviewed results; an unknown rubric is an ``UnknownRubric``."""
    if not store.rubric_versions(rubric_id):
        raise UnknownRubric(f"unknown rubric {rubric_id!r}; GET /v1/rubrics lists the stored rubrics", field="rubric_id")
    reviewed = store.results_with_reviews(rubric_id)
    return agreement_of(
        [r.score for r in reviewed], [r.review.score for r in reviewed], [r.max_score for r in reviewed], rubric_id
    )
