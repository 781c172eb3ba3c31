"""Liveness and metrics for operators."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from ..deps import ServicesDep
from ..schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}}, summary="Is the service ready?")
async def healthz(services: ServicesDep) -> Response:
    """200 when the model worker runs and the store answers; 503 (same body) otherwise."""
    try:
        store_ok = await run_in_threadpool(services.store.ping)
    except Exception:  # any database failure means "not ready", which is what this endpoint reports
        store_ok = False
    model_ok = services.worker.alive
    health = Health(
        status="ok" if store_ok and model_ok else "degraded",
        model=services.grader.encoder.name,
        model_loaded=model_ok,
        store=store_ok,
        queue_depth=services.worker.queue_depth,
    )
    return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
