"""Stored grades: every graded answer is kept with its fingerprint, so it can be audited later."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from ..deps import ServicesDep
from grader.errors import UnknownResult
from ..schemas import ErrorResponse, StoredResult

router = APIRouter(prefix="/v1/results", tags=["results"])


@router.get(
    "/{result_id}",
    response_model=StoredResult,
    responses={404: {"model": ErrorResponse, "description": "no result with this id"}},
    summary="Get a stored result",
)
async def get_result(result_id: Annotated[str, Path(max_length=64)], services: ServicesDep) -> StoredResult:
    found = await run_in_threadpool(services.store.get_result, result_id)
    if found is None:
        raise UnknownResult(f"no stored result with id {result_id!r}; ids come from POST /v1/grade", field="result_id")
    answer, result = found
    return StoredResult(id=result_id, answer=answer, **dict(result))
