"""Grading: one answer, or a batch where each item succeeds or fails on its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from grader.errors import GraderError
from grader.result import GradeResult

from ..deps import ServicesDep, rubric_for
from ..errors import describe_validation, error_body
from ..schemas import (
    EXAMPLE_ANSWER,
    EXAMPLE_RUBRIC,
    BatchGradeRequest,
    BatchGradeResponse,
    BatchItemResult,
    ErrorBody,
    ErrorResponse,
    GradeRequest,
    GradeResponse,
)

router = APIRouter(prefix="/v1/grade", tags=["grading"])

ERRORS = {
    404: {"model": ErrorResponse, "description": "unknown rubric id or version"},
    413: {"model": ErrorResponse, "description": "body or answer too large"},
    422: {"model": ErrorResponse, "description": "invalid request, rubric or answer"},
}
GRADE_EXAMPLES = {
    "stored rubric": {
        "summary": "grade against a stored rubric",
        "value": {"rubric_id": "batch-normalization", "answer": EXAMPLE_ANSWER},
    },
    "inline rubric": {
        "summary": "grade against a rubric sent with the answer",
        "value": {"rubric": EXAMPLE_RUBRIC, "answer": "Overfitting is memorizing noise; regularization helps."},
    },
}


@router.post("", response_model=GradeResponse, responses=ERRORS, summary="Grade one answer")
async def grade(
    request: Annotated[GradeRequest, Body(openapi_examples=GRADE_EXAMPLES)], services: ServicesDep
) -> GradeResponse:
    """Grade ``answer`` against a stored rubric (``rubric_id``, optional ``rubric_version``) or an inline ``rubric``.

    The result is stored with its fingerprint and can be fetched again at ``/v1/results/{id}``.
    """
    rubric = await run_in_threadpool(rubric_for, services.store, request)
    (outcome,) = await services.worker.grade([(rubric, request.answer)])
    if isinstance(outcome, GraderError):
        raise outcome
    (result_id,) = await run_in_threadpool(services.store.save_results, [request.answer], [outcome])
    return _response(result_id, outcome)


@router.post("/batch", response_model=BatchGradeResponse, responses=ERRORS, summary="Grade several answers")
async def grade_batch(request: BatchGradeRequest, services: ServicesDep) -> BatchGradeResponse:
    """Grade up to ``GRADER_MAX_BATCH_ANSWERS`` items together; a bad item gets an ``error``, the others a ``result``."""
    limit = services.settings.max_batch_answers
    if len(request.items) > limit:
        raise GraderError(
            f"a batch holds at most {limit} items, got {len(request.items)} (setting GRADER_MAX_BATCH_ANSWERS); "
            "split it, or use a batch job for large files",
            field="items",
        )
    valid, errors = _validate_items(request.items)
    rubrics = await run_in_threadpool(_resolve_all, services, valid, errors)
    todo = [i for i in valid if i in rubrics]
    outcomes = dict(zip(todo, await services.worker.grade([(rubrics[i], valid[i].answer) for i in todo])))
    graded = {i: o for i, o in outcomes.items() if isinstance(o, GradeResult)}
    errors |= {i: error_body(o) for i, o in outcomes.items() if isinstance(o, GraderError)}
    ids = await run_in_threadpool(services.store.save_results, [valid[i].answer for i in graded], list(graded.values()))
    responses = {i: _response(rid, r) for (i, r), rid in zip(graded.items(), ids)}
    items = [BatchItemResult(index=i, result=responses.get(i), error=errors.get(i)) for i in range(len(request.items))]
    return BatchGradeResponse(results=items, graded=len(responses), failed=len(errors))


def _validate_items(items: list) -> tuple[dict[int, GradeRequest], dict[int, ErrorBody]]:
    """Each item on its own, so one malformed item is reported in place (fields relative to the item)."""
    valid, errors = {}, {}
    for i, raw in enumerate(items):
        try:
            valid[i] = GradeRequest.model_validate(raw)
        except ValidationError as err:
            type_, message, field = describe_validation(err.errors(), whole="item")
            errors[i] = ErrorBody(type=type_, message=message, field=field)
    return valid, errors


def _resolve_all(services, valid: dict[int, GradeRequest], errors: dict[int, ErrorBody]) -> dict:
    """Look up each item's rubric once per (id, version); a lookup failure becomes that item's error."""
    found: dict[tuple, object] = {}
    rubrics = {}
    for i, item in valid.items():
        key = (item.rubric_id, item.rubric_version) if item.rubric is None else ("inline", i)
        if key not in found:
            try:
                found[key] = rubric_for(services.store, item)
            except GraderError as err:
                found[key] = err
        if isinstance(found[key], GraderError):
            errors[i] = error_body(found[key])
        else:
            rubrics[i] = found[key]
    return rubrics


def _response(result_id: str, result: GradeResult) -> GradeResponse:
    return GradeResponse(id=result_id, **dict(result))  # shallow: nested models are reused, not re-validated
