"""Rubrics in the store: read by anyone, written with an API key; every change is a new version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from grader.errors import RubricError, UnknownRubric
from grader.rubric import ID_PATTERN, MAX_VERSION, Rubric, parse_rubric, parse_rubric_text

from ..deps import ApiKey, ServicesDep
from ..schemas import EXAMPLE_RUBRIC, ErrorResponse, RubricBody, RubricList, RubricVersions

router = APIRouter(prefix="/v1/rubrics", tags=["rubrics"])

RubricId = Annotated[str, Path(pattern=ID_PATTERN, max_length=80, description="lowercase-dashed rubric id")]
NOT_FOUND = {404: {"model": ErrorResponse, "description": "unknown rubric or version"}}
AUTH = {
    401: {"model": ErrorResponse, "description": "no API key sent"},
    403: {"model": ErrorResponse, "description": "wrong API key, or none configured on the server"},
    422: {"model": ErrorResponse, "description": "invalid rubric; the message names the field"},
}


@router.get("", response_model=RubricList, summary="List rubrics (latest versions)")
async def list_rubrics(services: ServicesDep) -> RubricList:
    rubrics = await run_in_threadpool(services.store.list_rubrics)
    return RubricList(rubrics=rubrics)


@router.post(
    "/validate",
    response_model=Rubric,
    responses={422: {"model": ErrorResponse, "description": "invalid YAML or rubric; the message names the field"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}, "example": "id: my-rubric\nquestion: ...\nkey_points:\n  - id: a\n    text: ...\n"},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
    summary="Check a rubric written as YAML (or JSON) without storing it",
)
async def validate_rubric(request: Request) -> Rubric:
    """Parse and validate the body as a rubric file would be; returns it as JSON, ready for ``POST /v1/grade``."""
    return parse_rubric_text(await request.body(), "request body")


@router.get("/{rubric_id}", response_model=Rubric, responses=NOT_FOUND, summary="Get a rubric")
async def get_rubric(
    rubric_id: RubricId,
    services: ServicesDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION, description="a stored version; default: the latest")] = None,
) -> Rubric:
    return await run_in_threadpool(services.store.get_rubric, rubric_id, version)


@router.get("/{rubric_id}/versions", response_model=RubricVersions, responses=NOT_FOUND, summary="List versions")
async def rubric_versions(rubric_id: RubricId, services: ServicesDep) -> RubricVersions:
    versions = await run_in_threadpool(services.store.rubric_versions, rubric_id)
    if not versions:
        raise UnknownRubric(f"unknown rubric {rubric_id!r}", field="rubric_id")
    return RubricVersions(rubric_id=rubric_id, versions=versions)


@router.put(
    "/{rubric_id}",
    response_model=Rubric,
    responses={**AUTH},
    dependencies=[ApiKey],
    summary="Create or change a rubric (needs an API key)",
)
async def put_rubric(
    rubric_id: RubricId,
    body: Annotated[RubricBody, Body(openapi_examples={"rubric": {"value": EXAMPLE_RUBRIC}})],
    services: ServicesDep,
) -> Rubric:
    """Store the rubric as a new version if its content changed; older versions stay readable."""
    if body.id is not None and body.id != rubric_id:
        raise RubricError(f"body id {body.id!r} does not match the path id {rubric_id!r}", field="id")
    rubric = parse_rubric({**body.model_dump(exclude={"version"}), "id": rubric_id}, f"rubric {rubric_id!r}")
    return await run_in_threadpool(services.store.put_rubric, rubric)


@router.delete(
    "/{rubric_id}",
    status_code=204,
    responses={**AUTH, **NOT_FOUND},
    dependencies=[ApiKey],
    summary="Retire a rubric (needs an API key)",
)
async def delete_rubric(rubric_id: RubricId, services: ServicesDep) -> Response:
    """Hide the rubric from listings and new grades; its versions stay readable for stored results."""
    await run_in_threadpool(services.store.delete_rubric, rubric_id)
    return Response(status_code=204)
