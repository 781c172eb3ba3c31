"""The playground page in headless Chromium against a real server, and the rubric impact preview."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import serve_app

from grader.settings import PROJECT_ROOT, Settings

SCREENSHOTS = PROJECT_ROOT / "test-output"
ANSWER = (
    "Batch normalization normalizes each layer's activations to zero mean and unit variance using the "
    "mini-batch statistics. It allows higher learning rates and makes training faster and more stable."
)


@pytest.fixture(scope="module")
def base_url(settings: Settings, grader, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("playground") / "api.db"
    yield from serve_app(settings.model_copy(update={"database_url": f"sqlite:///{db}"}))


def test_impact_preview_names_the_answers_a_rubric_change_moves(base_url: str):
    with httpx.Client(base_url=base_url, timeout=60) as client:
        stored = client.get("/v1/rubrics/batch-normalization").json()
        answers = [ANSWER, "It is a kind of dropout."]
        same = client.post("/v1/rubrics/batch-normalization/impact", json={"rubric": stored, "answers": answers})
        assert same.status_code == 200, same.text
        assert same.json()["changed"] == 0
        # Past grades are the default answers: grade one, then drop the key point it covered.
        client.post("/v1/grade", json={"rubric_id": "batch-normalization", "answer": ANSWER}).raise_for_status()
        fewer = {**stored, "key_points": stored["key_points"][1:]}
        moved = client.post("/v1/rubrics/batch-normalization/impact", json={"rubric": fewer}).json()
        assert moved["answers"] >= 1 and moved["changed"] >= 1
        assert moved["changes"][0]["answer"] == ANSWER
        anonymous = {k: v for k, v in stored.items() if k != "id"}
        missing = client.post("/v1/rubrics/no-such-rubric/impact", json={"rubric": anonymous, "answers": answers})
        assert missing.status_code == 404 and "no-such-rubric" in missing.text
        mismatch = client.post("/v1/rubrics/max-pooling/impact", json={"rubric": stored, "answers": answers})
        assert mismatch.status_code == 422 and "does not match the path id" in mismatch.text


def test_playground_grades_as_you_type_and_highlights_evidence(base_url: str, page):
    page.goto(f"{base_url}/playground")
    page.wait_for_function("document.querySelectorAll('#rubric-select option').length > 1")
    page.select_option("#rubric-select", "batch-normalization")
    page.fill("#answer", ANSWER)
    page.wait_for_selector(".kp[data-status]", timeout=30_000)
    statuses = page.eval_on_selector_all(".kp", "els => els.map(e => e.dataset.status)")
    assert "covered" in statuses
    assert page.text_content("#score").endswith("/ 5.0") or "/ 5" in page.text_content("#score")
    marks = page.eval_on_selector_all("#highlighted mark.covered", "els => els.map(e => e.textContent)")
    assert marks and all(m in ANSWER for m in marks)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=True)
    # An off-topic answer replaces the result: nothing covered, score 0.
    page.fill("#answer", "I like turtles and the colour green.")
    page.wait_for_function("document.querySelector('#score').textContent.startsWith('0 ')", timeout=30_000)
    assert page.locator("#highlighted mark").count() == 0
    # A rubric pasted as YAML (as in rubrics/) is graded inline; a broken one names its problem.
    page.select_option("#rubric-select", "")
    page.click("#paste summary")
    page.fill("#rubric-text", (PROJECT_ROOT / "rubrics" / "batch-normalization.yaml").read_text())
    page.fill("#answer", ANSWER)
    page.wait_for_function("document.querySelectorAll('.kp[data-status=covered]').length > 0", timeout=30_000)
    page.fill("#rubric-text", "id: broken\nquestion: [unclosed")
    page.wait_for_function("document.querySelector('#error').textContent.includes('invalid YAML')", timeout=30_000)


def test_api_docs_render_without_internet(base_url: str, page):
    """/docs uses Swagger UI files served by the app; this machine cannot reach a CDN."""
    page.goto(f"{base_url}/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/v1/grade']", timeout=30_000)
    assert "answer-grader" in page.text_content(".title")
