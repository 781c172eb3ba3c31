"""The review page in headless Chromium against a real server: untrusted answers stay text, reviews are stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import serve_app

from grader.settings import PROJECT_ROOT, Settings

SCREENSHOTS = PROJECT_ROOT / "test-output"
RUBRIC = "batch-normalization"
# An answer a student could send to attack the teacher's browser, with enough of an answer to be graded.
HOSTILE = (
    "It normalizes activations <script>window.__pwned = 'script'</script> with the batch mean "
    "<img src=x onerror=\"window.__pwned = 'onerror'\"> and variance."
)
KEY = "teacher-secret"


@pytest.fixture(scope="module")
def base_url(settings: Settings, grader, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("review-page") / "api.db"
    # A strict review threshold (0.9), so the partly right hostile answer (confidence ~0.66) is queued.
    update = {"database_url": f"sqlite:///{db}", "api_keys": [f"mrs-smith:{KEY}"], "review_confidence": 0.9}
    yield from serve_app(settings.model_copy(update=update))


def test_review_page_shows_hostile_answers_as_text_and_stores_a_review(base_url: str, page):
    # The page's CSP forbids eval, so waits use locators (page.wait_for_function would be blocked too).
    expect = pytest.importorskip("playwright.sync_api").expect
    with httpx.Client(base_url=base_url, timeout=60) as client:
        graded = client.post("/v1/grade", json={"rubric_id": RUBRIC, "answer": HOSTILE}).json()
        queued = client.get("/v1/review", params={"rubric_id": RUBRIC}).json()["items"]
        assert graded["id"] in {i["id"] for i in queued}, "the hostile answer must be in the queue for this test"
        headers = client.get("/review").headers
        assert "script-src 'self'" in headers["content-security-policy"]
    page.goto(f"{base_url}/review")
    item = page.locator(f".item[data-id='{graded['id']}']")
    item.wait_for(timeout=30_000)
    answer = item.locator(".answer")
    assert answer.text_content() == HOSTILE  # shown exactly, as text
    assert page.locator(".item script, .item img").count() == 0
    assert page.evaluate("window.__pwned") is None
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)

    # Without a key the submit is refused and says why; with it the review is stored under the key's name.
    item.locator(".score").fill("2.5")
    first_point = graded["key_points"][0]["id"]
    item.locator(f".kp[data-kp='{first_point}'] button[data-status='missing']").click()
    item.locator(".submit").click()
    expect(item.locator(".message")).to_contain_text("API key", timeout=30_000)
    page.fill("#api-key", KEY)
    item.locator(".comment").fill("<b>not bold</b>")
    item.locator(".submit").click()
    expect(item.locator(".message")).to_have_text("reviewed by mrs-smith", timeout=30_000)
    stored = httpx.get(f"{base_url}/v1/results/{graded['id']}", timeout=60).json()
    assert stored["review"]["score"] == 2.5 and stored["review"]["reviewer"] == "mrs-smith"
    assert stored["review"]["key_points"] == {first_point: "missing"}
    assert stored["review"]["comment"] == "<b>not bold</b>"
    assert stored["score"] == graded["score"]  # the machine grade is kept
    assert page.evaluate("window.__pwned") is None
