"""The app factory: ``create_app(settings)`` wires settings, store, model worker, routes and errors.

The model and the rubrics load once, in the lifespan; ``grader serve`` runs the result with
uvicorn. Everything that grades lives in ``grader/``; this package only speaks HTTP.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from grader import __version__
from grader.settings import Settings, get_settings

from .deps import KeyIfRequired, build_services
from .errors import install_error_handlers
from .limits import BodySizeLimit
from .metrics import Metrics, MetricsMiddleware
from .routes import grade, health, jobs, playground, results, review, review_page, rubrics

DESCRIPTION = """
Grades free-text answers against rubric key points with sentence embeddings, and explains each grade:
which key points are covered, partial, missing or contradicted, and the clause of the answer that shows it.

Errors are JSON: `{"error": {"type": ..., "message": ..., "field": ...}}`. Rubric and review writes need
`Authorization: Bearer <key>` with a key from `GRADER_API_KEYS`; with `GRADER_REQUIRE_API_KEY=true` every
endpoint does.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = await run_in_threadpool(build_services, settings, metrics)
        app.state.services = services
        try:
            yield
        finally:
            services.worker.stop()
            services.store.engine.dispose()

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI / ReDoc from files shipped in the
    # package, not from a CDN, so the docs render on machines without internet access.
    app = FastAPIOffline(title="answer-grader", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    for module in (grade, rubrics, results, jobs, review):
        app.include_router(module.router, dependencies=[KeyIfRequired])
    for module in (health, playground, review_page):  # probes and static pages stay open; their API calls do not
        app.include_router(module.router)
    install_error_handlers(app)
    # Outermost last: metrics see every request, including those the size limit rejects.
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
