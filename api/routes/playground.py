"""The playground page (a static HTML + JS file, no build step) and the rubric impact preview.

The page talks only to the public API (``GET /v1/rubrics``, ``POST /v1/grade``); the impact
preview regrades answers with the stored and a proposed rubric before anyone publishes the change,
or a rubric's stored results under a review calibration before anyone turns it on.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Body, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from grader.errors import GraderError
from grader.impact import CalibrationImpact, calibration_impact
from grader.review_calibration import ReviewCalibration
from grader.rubric import ID_PATTERN, parse_rubric
from grader.tune import RubricComparison, comparison_items, comparison_of, past_answers

from ..deps import KeyIfRequired, ServicesDep
from ..schemas import ErrorResponse, RubricBody

router = APIRouter(tags=["tuning"])

PAGE = FilePath(__file__).resolve().parent.parent / "static" / "playground.html"
MAX_IMPACT_ANSWERS = 1000


class ImpactRequest(BaseModel):
    """Either a proposed rubric, or a review calibration; an empty body means the active review calibration."""

    rubric: RubricBody | None = Field(None, description="a proposed rubric; compared with the latest stored version")
    answers: list[str] | None = Field(
        None,
        max_length=MAX_IMPACT_ANSWERS,
        description="with rubric: answers to regrade; default: the most recent answers graded against this rubric",
    )
    calibration: ReviewCalibration | None = Field(
        None,
        description="a review calibration artefact (`grader calibrate --from-reviews`): the rubric's stored results are "
        "regraded under it (at most GRADER_MAX_IMPACT_RESULTS, the most recent); default: the active one",
    )


@router.get("/playground", include_in_schema=False)
async def playground() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")


@router.post(
    "/v1/rubrics/{rubric_id}/impact",
    response_model=RubricComparison | CalibrationImpact,
    responses={404: {"model": ErrorResponse, "description": "unknown rubric"}, 422: {"model": ErrorResponse}},
    summary="Preview how a rubric change or a review calibration would change scores",
    dependencies=[KeyIfRequired],
)
async def rubric_impact(
    rubric_id: Annotated[str, Path(pattern=ID_PATTERN, max_length=80)],
    services: ServicesDep,
    request: Annotated[ImpactRequest | None, Body()] = None,
) -> RubricComparison | CalibrationImpact:
    """Regrade answers with the stored rubric and the proposed one, or stored results under a review calibration;
    nothing is stored."""
    request = request or ImpactRequest()
    if request.rubric is None:
        if request.answers is not None:
            raise GraderError("answers apply to a proposed rubric only; a calibration regrades stored results", field="answers")
        return await run_in_threadpool(
            calibration_impact, services.store, services.grader, rubric_id, request.calibration,
            services.settings.max_impact_results,
        )
    if request.calibration is not None:
        raise GraderError("send either rubric or calibration, not both", field="calibration")
    if request.rubric.id is not None and request.rubric.id != rubric_id:
        raise GraderError(
            f"body rubric id {request.rubric.id!r} does not match the path id {rubric_id!r}", field="rubric.id"
        )
    old = await run_in_threadpool(services.store.get_rubric, rubric_id)
    new = parse_rubric({**request.rubric.model_dump(exclude={"version"}), "id": rubric_id}, f"rubric {rubric_id!r}")
    new = new.model_copy(update={"version": old.version + 1})
    answers = request.answers
    if answers is None:
        answers = await run_in_threadpool(past_answers, services.store, rubric_id, MAX_IMPACT_ANSWERS)
    results = await services.worker.grade(comparison_items(old, new, answers))
    return comparison_of(old, new, answers, results)
