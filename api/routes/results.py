"""Stored grades: every graded answer is kept with its fingerprint, so it can be audited later."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from grader.errors import UnknownResult
from grader.store import Store

from ..deps import ServicesDep
from ..schemas import ErrorResponse, StoredResult

router = APIRouter(prefix="/v1/results", tags=["results"])

ResultId = Annotated[str, Path(max_length=64, description="the id POST /v1/grade returned")]
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no result with this id"}}


def stored_result(store: Store, result_id: str) -> StoredResult:
    """The stored result with its latest review; an unknown id is a 404."""
    found = store.get_result(result_id)
    if found is None:
        raise UnknownResult(f"no stored result with id {result_id!r}; ids come from POST /v1/grade", field="result_id")
    answer, result = found
    return StoredResult(id=result_id, answer=answer, review=store.latest_review(result_id), **dict(result))


@router.get("/{result_id}", response_model=StoredResult, responses=NOT_FOUND, summary="Get a stored result")
async def get_result(result_id: ResultId, services: ServicesDep) -> StoredResult:
    """The machine grade as it was made, and beside it the latest human ``review`` (null when none)."""
    return await run_in_threadpool(stored_result, services.store, result_id)
