"""Shared fixtures: the real model is loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from grader.grade import Grader  # noqa: E402
from grader.rubric import load_rubrics  # noqa: E402
from grader.settings import PROJECT_ROOT, Settings  # noqa: E402

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
