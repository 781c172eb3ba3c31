"""Shared fixtures: the real model is loaded once per test session."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from pgserver import PostgresServer, PostgresUnavailable, throwaway_postgres  # noqa: E402

from grader.grade import Grader  # noqa: E402
from grader.rubric import load_rubrics  # noqa: E402
from grader.settings import PROJECT_ROOT, Settings, get_settings  # noqa: E402

RUBRICS_DIR = PROJECT_ROOT / "rubrics"
SHARED_DATA = Path(os.environ.get("GRADER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("db") / "grader.db"
    return Settings(rubrics_dir=RUBRICS_DIR, database_url=f"sqlite:///{db}")


@pytest.fixture(scope="session")
def grader(settings: Settings) -> Grader:
    return Grader(settings)


@pytest.fixture(scope="session")
def rubrics():
    return load_rubrics(RUBRICS_DIR)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"human-graded data not found at {SHARED_DATA} (set GRADER_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI reads settings from the environment: point its store at a fresh SQLite file."""
    monkeypatch.setenv("GRADER_DATABASE_URL", f"sqlite:///{tmp_path / 'grader.db'}")
    monkeypatch.setenv("GRADER_RUBRICS_DIR", str(PROJECT_ROOT / "rubrics"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def serve_app(settings: Settings) -> Iterator[str]:
    """Run the API with uvicorn in a thread on a free loopback port; yield its base URL once, then stop it.

    Used as ``yield from serve_app(...)`` in a fixture or ``for url in serve_app(...)`` in a test. The
    model is shared with the test process (one loaded encoder per process).
    """
    import uvicorn

    from api.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start; see the log above")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def store_at_revision(url: str, revision: str, insert: str, params: dict):
    """A store migrated only to ``revision``, holding a row written with plain SQL as an older version left it."""
    from alembic import command
    from sqlalchemy import text

    from grader.store import _alembic_config, make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
        conn.execute(text(insert), params)
    return engine


BACKENDS = ["sqlite", "postgresql"]


def _new_database(request: pytest.FixtureRequest, directory: Path) -> str:
    """A new empty database of the kind ``request.param`` names (PostgreSQL: on the session's throwaway server)."""
    if request.param == "sqlite":
        return f"sqlite:///{directory / 'grader.db'}"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    """A new empty database of each kind for every test."""
    return _new_database(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_store_url(request, tmp_path_factory) -> str:
    """A new empty database of each kind shared by one module's tests: for a served API or a store filled once.

    pytest runs a module's tests grouped by backend (also under pytest-randomly), so each is set up once; the
    tests must not depend on each other's rows.
    """
    return _new_database(request, tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (tests/pgserver.py); skips with the reason if none can start."""
    try:
        with throwaway_postgres() as server:
            yield server
    except PostgresUnavailable as err:
        pytest.skip(f"PostgreSQL unavailable: {err}")


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def page():
    """A page in Debian's headless Chromium (never a downloaded browser build), closed after the test."""
    if not CHROMIUM.exists():
        pytest.skip("headless test needs Debian's chromium: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()
