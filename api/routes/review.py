"""The review loop over HTTP: the queue of uncertain grades, reviews of stored results, agreement per rubric.

Reading is open (unless ``GRADER_REQUIRE_API_KEY``); writing a review needs an API key, whose name
is stored as the reviewer.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Body, Query
from starlette.concurrency import run_in_threadpool

from grader.review import MAX_QUEUE_PAGE, Agreement, ReviewInput, ReviewQueue, informative_queue, rubric_agreement

from ..deps import ReviewerName, ServicesDep
from ..schemas import ErrorResponse, ReviewHistory, StoredResult
from .results import NOT_FOUND, ResultId, stored_result
from .rubrics import AUTH, RubricId

router = APIRouter(tags=["review"])


class Strategy(str, Enum):
    least_confident = "least_confident"
    informative = "informative"


@router.get("/v1/review", response_model=ReviewQueue, summary="The review queue")
async def get_review_queue(
    services: ServicesDep,
    rubric_id: Annotated[str | None, Query(max_length=80, description="only results of this rubric")] = None,
    flag: Annotated[str | None, Query(max_length=80, description="only results raising this flag, e.g. short_answer")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_QUEUE_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
    strategy: Annotated[
        Strategy,
        Query(description="least_confident: pages of the queue; informative: the `limit` answers whose review "
              "teaches the grader most (spread over what the answers say and the scores they got), one page"),
    ] = Strategy.least_confident,
) -> ReviewQueue:
    """Unreviewed results with ``needs_review``, least confident first."""
    if strategy is Strategy.informative:
        return await run_in_threadpool(informative_queue, services.store, services.grader.encoder, rubric_id, flag, limit)
    items, next_cursor = await run_in_threadpool(services.store.review_queue, rubric_id, flag, limit, cursor)
    return ReviewQueue(items=items, next_cursor=next_cursor)


@router.post(
    "/v1/results/{result_id}/review",
    response_model=StoredResult,
    responses={**AUTH, **NOT_FOUND, 422: {"model": ErrorResponse, "description": "score out of range or unknown key point"}},
    summary="Review a stored result (needs an API key)",
)
async def review_result(
    result_id: ResultId,
    review: Annotated[ReviewInput, Body()],
    reviewer: ReviewerName,
    services: ServicesDep,
) -> StoredResult:
    """Store a human review beside the machine grade (which stays as it was); returns the result with its ``review``."""
    await run_in_threadpool(services.store.add_review, result_id, review, reviewer)
    return await run_in_threadpool(stored_result, services.store, result_id)


@router.get(
    "/v1/results/{result_id}/reviews", response_model=ReviewHistory, responses=NOT_FOUND, summary="Every review of a result"
)
async def result_reviews(result_id: ResultId, services: ServicesDep) -> ReviewHistory:
    await run_in_threadpool(stored_result, services.store, result_id)  # 404 for an unknown id
    return ReviewHistory(result_id=result_id, reviews=await run_in_threadpool(services.store.reviews_of, result_id))


@router.get(
    "/v1/rubrics/{rubric_id}/agreement",
    response_model=Agreement,
    responses={404: {"model": ErrorResponse, "description": "unknown rubric"}},
    summary="Machine vs human on reviewed results",
)
async def get_rubric_agreement(rubric_id: RubricId, services: ServicesDep) -> Agreement:
    """Pearson, QWK, mean difference (machine - human) and count over the rubric's reviewed results (latest reviews)."""
    return await run_in_threadpool(rubric_agreement, services.store, rubric_id)
