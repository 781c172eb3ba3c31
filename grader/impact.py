"""What a review calibration would do to stored grades, before it is turned on.

``calibration_impact`` regrades a rubric's stored results (the most recent ``limit``) through the one grading
path (``Grader.grade_many``) under the candidate artefact and lists every stored grade that would move,
largest move first, with agreement before and after on the reviewed ones. Nothing is stored.
Used by ``POST /v1/rubrics/{id}/impact`` (with a ``calibration`` body) and ``grader calibrate --compare``.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from .errors import GraderError, UnknownRubric
from .grade import Grader, scores_of
from .review import Agreement, agreement_of
from .review_calibration import ReviewCalibration
from .rubric import Rubric

MOVED = 1e-6  # a change smaller than this is rounding, not a move
GRADE_CHUNK = 256  # results regraded per grade_many call


class GradeMove(BaseModel):
    result_id: str
    old: float = Field(description="the stored score")
    new: float = Field(description="the score under the candidate calibration")
    delta: float
    human: float | None = Field(None, description="the latest review's score, if reviewed")


class CalibrationImpact(BaseModel):
    rubric_id: str
    calibration: str = Field(description="the candidate artefact, name@version")
    results: int = Field(description="stored results of the rubric")
    regraded: int = Field(description="most recent results regraded (at most GRADER_MAX_IMPACT_RESULTS)")
    capped: bool = Field(description="true when older results were not regraded because of the cap")
    moved: int = Field(description="regraded results whose score changes at all")
    moved_half_point: int = Field(description="... by 0.5 point or more")
    moved_one_point: int = Field(description="... by 1 point or more")
    mean_abs_delta: float
    before: Agreement = Field(description="stored scores vs the latest reviews, on the regraded reviewed results")
    after: Agreement = Field(
        description="candidate scores vs the same reviews; in-sample when the artefact holds these reviews as "
        "neighbours (its held-out numbers are in its notes)"
    )
    moves: list[GradeMove] = Field(description="every regraded result that moves, largest |delta| first")


def active_calibration(grader: Grader, rubric_id: str) -> ReviewCalibration:
    """The review calibration the grader applies to ``rubric_id``; a clear error when none is on."""
    review = grader.reviews.for_rubric(rubric_id)
    if review is None:
        raise GraderError(
            f"no review calibration is active for rubric {rubric_id!r}; send a candidate artefact as 'calibration' "
            "or turn one on with GRADER_REVIEW_CALIBRATIONS",
            field="calibration",
        )
    return review


def calibration_impact(
    store, grader: Grader, rubric_id: str, candidate: ReviewCalibration | None, limit: int
) -> CalibrationImpact:
    """Regrade the rubric's most recent ``limit`` stored results under ``candidate`` (None: the active one)."""
    if not store.rubric_versions(rubric_id):
        raise UnknownRubric(f"unknown rubric {rubric_id!r}; GET /v1/rubrics lists the stored rubrics", field="rubric_id")
    candidate = candidate or active_calibration(grader, rubric_id)
    if candidate.rubric_id not in (None, rubric_id):
        raise GraderError(
            f"calibration {candidate.name} applies to rubric {candidate.rubric_id!r}, not {rubric_id!r}",
            field="calibration.rubric_id",
        )
    stored = store.results_with_reviews(rubric_id, reviewed_only=False)
    recent = stored[-limit:]
    rubrics: dict[int | None, Rubric] = {}
    for r in recent:
        if r.rubric_version not in rubrics:
            rubrics[r.rubric_version] = store.get_rubric(rubric_id, r.rubric_version)
    variant = grader.with_review_calibrations([candidate])
    items = [(rubrics[r.rubric_version], r.answer) for r in recent]
    new = np.concatenate(
        [scores_of(variant.grade_many(items[i : i + GRADE_CHUNK])) for i in range(0, len(items), GRADE_CHUNK)]
        or [np.zeros(0)]
    )
    old = np.array([r.score for r in recent], dtype=float)
    delta = new - old
    human = [r.review.score if r.review else None for r in recent]
    order = np.argsort(-np.abs(delta), kind="stable")
    moves = [
        GradeMove(result_id=recent[i].id, old=old[i], new=float(new[i]), delta=round(float(delta[i]), 3), human=human[i])
        for i in order
        if abs(delta[i]) > MOVED
    ]
    reviewed = [i for i, h in enumerate(human) if h is not None]
    top = [recent[i].max_score for i in reviewed]
    truth = [human[i] for i in reviewed]
    return CalibrationImpact(
        rubric_id=rubric_id,
        calibration=candidate.name,
        results=len(stored),
        regraded=len(recent),
        capped=len(stored) > len(recent),
        moved=len(moves),
        moved_half_point=int((np.abs(delta) >= 0.5).sum()),
        moved_one_point=int((np.abs(delta) >= 1.0).sum()),
        mean_abs_delta=round(float(np.abs(delta).mean()), 4) if len(delta) else 0.0,
        before=agreement_of(old[reviewed], truth, top, rubric_id),
        after=agreement_of(new[reviewed], truth, top, rubric_id),
        moves=moves,
    )
