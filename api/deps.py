"""Shared dependencies of the routes: the services built once per app, rubric lookup, and auth.

``Services`` is built in the app's lifespan (model loaded, store opened and seeded, inference
worker started) and reached by routes through ``ServicesDep``; routes never build anything.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError

from grader.errors import RubricError, UnknownRubric
from grader.grade import Grader
from grader.rubric import Rubric, load_rubrics
from grader.settings import Settings
from grader.store import Store
from grader.worker import InferenceWorker

from .metrics import Metrics
from .schemas import GradeRequest

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    grader: Grader
    worker: InferenceWorker
    metrics: Metrics


def build_services(settings: Settings, metrics: Metrics) -> Services:
    """Open and seed the store, load the model, warm it up and start the inference worker."""
    store = Store(settings.database_url)
    seed_store(store, settings)
    grader = Grader(settings, vectors=store)
    # Encode every stored rubric once now, so the first requests do not pay for it.
    rubrics = store.list_rubrics()
    if rubrics:
        grader.grade_many([(r, r.question) for r in rubrics])
    worker = InferenceWorker(grader, settings.microbatch_window_ms, settings.microbatch_max_size, metrics.observe_batch)
    metrics.track_queue(lambda: worker.queue_depth)
    return Services(settings, store, grader, worker.start(), metrics)


def seed_store(store: Store, settings: Settings) -> None:
    """Add the shipped rubrics the store does not know yet; a store already seeded is left alone."""
    if not settings.rubrics_dir.is_dir():
        log.warning("rubrics dir %s does not exist; the store is not seeded", settings.rubrics_dir)
        return
    rubrics = load_rubrics(settings.rubrics_dir)
    try:
        added = store.seed_rubrics(rubrics)
    except IntegrityError:  # another server process seeded the same rubric at the same moment
        added = store.seed_rubrics(rubrics)
    if added:
        log.info("seeded the store with %d rubric(s) from %s", added, settings.rubrics_dir)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def rubric_for(store: Store, item: GradeRequest) -> Rubric:
    """The rubric a grade request names: inline, or a stored id (latest or a given version)."""
    if (item.rubric is None) == (item.rubric_id is None):
        raise RubricError(
            "give either rubric_id (a stored rubric) or rubric (an inline rubric object), not both or neither",
            field="rubric_id",
        )
    if item.rubric is not None:
        if item.rubric_version is not None:
            raise RubricError("rubric_version only applies to rubric_id, not to an inline rubric", field="rubric_version")
        return item.rubric
    try:
        return store.get_rubric(item.rubric_id, item.rubric_version)
    except UnknownRubric as err:
        raise UnknownRubric(f"{err.message}; GET /v1/rubrics lists the stored rubrics", field=err.field) from None


_bearer = HTTPBearer(auto_error=False, description="an API key listed in GRADER_API_KEYS")


def require_api_key(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """Writes need ``Authorization: Bearer <key>``; with no keys configured they are refused. Returns the key's name."""
    names = services.settings.key_names()
    if not names:
        raise HTTPException(
            403,
            "this endpoint needs an API key and none is configured; set GRADER_API_KEYS "
            "(comma-separated name:key pairs, e.g. 'alice:my-secret-key') and restart the server",
        )
    if credentials is None:
        raise HTTPException(
            401,
            "this endpoint needs an API key: send 'Authorization: Bearer <key>' with a key from GRADER_API_KEYS",
            headers={"WWW-Authenticate": "Bearer"},
        )
    sent = credentials.credentials.encode()
    # Compare with every key (no early exit), so the time taken does not say which key was close.
    matches = [name for key, name in names.items() if secrets.compare_digest(sent, key.encode())]
    if not matches:
        raise HTTPException(403, "the API key is not valid; use a key listed in GRADER_API_KEYS")
    return matches[0]


def require_api_key_if_configured(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """With ``GRADER_REQUIRE_API_KEY`` on, reads and grading need a key as writes do; otherwise open."""
    if services.settings.require_api_key:
        require_api_key(services, credentials)


ApiKey = Depends(require_api_key)
KeyIfRequired = Depends(require_api_key_if_configured)
ReviewerName = Annotated[str, Depends(require_api_key)]
