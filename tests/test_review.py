"""The review loop: reviews in the store (SQLite and PostgreSQL), the HTTP endpoints, named API keys, picking."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError
from tests.conftest import serve_app, store_at_revision

from grader.errors import GraderError, ReviewError, UnknownResult
from grader.review import ReviewInput, agreement_of, decode_cursor, pick_informative
from grader.settings import Settings, named_api_keys
from grader.store import Store

RUBRIC = "batch-normalization"
ANSWERS = [
    "Batch normalization normalizes each layer's activations to zero mean and unit variance using the mini-batch "
    "statistics. It allows higher learning rates and makes training faster and more stable.",
    "It normalizes the activations with the batch mean and variance.",
    "It makes training faster.",
    "Batch normalization is a kind of dropout.",
    "I like turtles.",
]
KEYS = ["alice:alice-secret", "bob:bob-secret"]
ALICE = {"Authorization": "Bearer alice-secret"}
BOB = {"Authorization": "Bearer bob-secret"}


@pytest.fixture(scope="module")
def graded(grader, rubrics):
    """The answers graded once by the real model (results are plain data; each test stores them afresh)."""
    return [grader.grade(rubrics[RUBRIC], a) for a in ANSWERS]


def _stored(store: Store, graded, needs_review: bool | None = None) -> list[str]:
    results = graded if needs_review is None else [r.model_copy(update={"needs_review": needs_review}) for r in graded]
    return store.save_results(ANSWERS, results)


# -- the store -------------------------------------------------------------------------------------------


def test_a_review_is_stored_beside_the_result_and_never_changes_the_machine_grade(store_url, graded):
    store = Store(store_url)
    (rid, *_) = _stored(store, graded)
    before = store.get_result(rid)
    review = store.add_review(rid, ReviewInput(score=1.5, key_points={"faster-stable": "missing"}, comment="too generous"), "alice")
    assert (review.score, review.reviewer, review.comment) == (1.5, "alice", "too generous")
    assert store.get_result(rid) == before  # the machine grade is untouched
    assert store.latest_review(rid).key_points == {"faster-stable": "missing"}
    assert store.latest_review(rid).created_at.utcoffset() == review.created_at.utcoffset() == timedelta(0)  # UTC on both


def test_a_second_review_keeps_the_first_and_the_latest_counts(store_url, graded):
    store = Store(store_url)
    (rid, *_) = _stored(store, graded)
    store.add_review(rid, ReviewInput(score=4), "alice")
    store.add_review(rid, ReviewInput(score=2, comment="second look"), "bob")
    history = store.reviews_of(rid)
    assert [(r.score, r.reviewer) for r in history] == [(4, "alice"), (2, "bob")]
    assert store.latest_review(rid).score == 2
    (reviewed,) = store.results_with_reviews(RUBRIC)
    assert reviewed.review.score == 2 and reviewed.score == graded[0].score


def test_eight_concurrent_reviews_of_one_result_lose_none(store_url, graded):
    store = Store(store_url)
    (rid, *_) = _stored(store, graded)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.add_review(rid, ReviewInput(score=i * 0.5), f"r{i}"), range(8)))
    assert sorted(r.reviewer for r in store.reviews_of(rid)) == [f"r{i}" for i in range(8)]


def test_a_review_that_does_not_fit_its_result_is_refused_naming_the_field(store_url, graded):
    store = Store(store_url)
    (rid, *_) = _stored(store, graded)
    with pytest.raises(ReviewError) as out_of_range:
        store.add_review(rid, ReviewInput(score=5.5), "alice")
    assert out_of_range.value.field == "score" and "0..5" in out_of_range.value.message
    with pytest.raises(ReviewError) as unknown_point:
        store.add_review(rid, ReviewInput(score=1, key_points={"no-such-point": "covered"}), "alice")
    assert unknown_point.value.field == "key_points.no-such-point"
    with pytest.raises(UnknownResult):
        store.add_review("no-such-result", ReviewInput(score=1), "alice")
    assert store.reviews_of(rid) == []


def test_the_queue_holds_unreviewed_results_that_need_review_least_confident_first_in_pages(store_url, graded):
    store = Store(store_url)
    ids = _stored(store, graded, needs_review=True)
    _stored(store, graded, needs_review=False)  # never queued
    order = [i for _, i in sorted(zip([r.confidence for r in graded], ids))]
    first, cursor = store.review_queue(limit=2)
    assert [r.id for r in first] == order[:2] and cursor and decode_cursor(cursor)[1] == order[1]
    rest, end = store.review_queue(limit=10, cursor=cursor)
    assert [r.id for r in rest] == order[2:] and end is None
    store.add_review(order[0], ReviewInput(score=1), "alice")
    assert order[0] not in {r.id for r in store.review_queue()[0]}
    assert store.review_queue(rubric_id="pca")[0] == []
    flagged = {i for i, r in zip(ids, graded) if "off_topic" in r.flags}
    assert {r.id for r in store.review_queue(flag="off_topic")[0]} == flagged - {order[0]}


def test_a_store_from_before_reviews_is_upgraded_and_its_results_join_the_queue(store_url, graded):
    store_at_revision(
        store_url,
        "0003",
        "INSERT INTO results (id, rubric_id, rubric_version, answer, body, created_at) VALUES ('old', :rubric, 1, :answer, :body, :t)",
        {
            "rubric": RUBRIC, "answer": ANSWERS[4], "t": "2026-01-01 00:00:00",
            "body": graded[4].model_copy(update={"needs_review": True, "flags": ["off_topic"]}).model_dump_json(),
        },
    )
    store = Store(store_url)
    (queued,) = store.review_queue(flag="off_topic")[0]
    assert queued.id == "old" and queued.confidence == graded[4].confidence


def test_a_nul_character_is_dropped_from_an_answer_and_refused_in_a_comment_or_reviewer_name(store_url, graded):
    # PostgreSQL text cannot hold NUL; the grader ignores it in answers, so the stored answer only loses what grading did.
    store = Store(store_url)
    (rid,) = store.save_results(["It makes\x00 training faster."], graded[2:3])
    assert store.get_result(rid)[0] == "It makes training faster."
    with pytest.raises(ValidationError, match="NUL character"):
        ReviewInput(score=1, comment="fine\x00")
    with pytest.raises(GraderError) as bad_name:
        store.add_review(rid, ReviewInput(score=1), "al\x00ice")
    assert bad_name.value.field == "reviewer" and store.reviews_of(rid) == []


# -- the core functions ------------------------------------------------------------------------------------


def test_named_keys_name_bare_keys_by_position_and_refuse_a_name_twice():
    assert named_api_keys(["alice:k1", "k2", "a/b:c"]) == {"alice": "k1", "key-2": "k2", "key-3": "a/b:c"}
    with pytest.raises(ValueError, match="used twice"):
        named_api_keys(["a:1", "a:2"])
    assert Settings(api_keys="alice:k1, k2").key_names() == {"k1": "alice", "k2": "key-2"}


def test_agreement_reports_pearson_qwk_mean_difference_and_count():
    agreement = agreement_of([1, 2, 3, 4], [1, 2, 3, 5], [5, 5, 5, 5], "x")
    assert agreement.count == 4 and agreement.mean_difference == -0.25
    assert 0.95 < agreement.pearson < 1 and 0.9 < agreement.qwk <= 1
    assert agreement_of([], [], []).pearson is None


def test_informative_picks_cover_what_answers_say_and_the_scores_they_got(grader):
    answers = [
        "It normalizes activations with batch statistics.",
        "It normalises the activations using the batch mean and variance.",
        "Activations are normalized with the statistics of the batch.",
        "It is a kind of dropout.",
        "I like turtles.",
    ]
    vectors = grader.encoder.encode(answers)
    picked = pick_informative(vectors, [0.6, 0.6, 0.6, 0.1, 0.0], 3)
    assert picked[0] in (0, 1, 2) and {3, 4} <= set(picked)  # one of the near-duplicates, then the different ones
    assert sorted(pick_informative(vectors, [0.6, 0.6, 0.6, 0.1, 0.0], 10)) == [0, 1, 2, 3, 4]
    assert pick_informative(vectors[:0], [], 3) == []


# -- over HTTP ---------------------------------------------------------------------------------------------


def _serve(settings: Settings, url: str, **extra) -> Iterator[str]:
    yield from serve_app(settings.model_copy(update={"database_url": url, "api_keys": KEYS, **extra}))


@pytest.fixture(scope="module")
def client(settings: Settings, grader, module_store_url: str) -> Iterator[httpx.Client]:
    """One server per backend for the module's HTTP tests."""
    for base in _serve(settings, module_store_url):
        with httpx.Client(base_url=base, timeout=60) as c:
            yield c


def _graded_ids(client: httpx.Client, answers=ANSWERS) -> list[str]:
    return [client.post("/v1/grade", json={"rubric_id": RUBRIC, "answer": a}).json()["id"] for a in answers]


def test_review_over_http_keeps_the_machine_grade_and_names_the_key_not_the_key(client):
    rid = _graded_ids(client, ANSWERS[:1])[0]
    before = client.get(f"/v1/results/{rid}").json()
    assert before["review"] is None
    reviewed = client.post(f"/v1/results/{rid}/review", json={"score": 3.5, "comment": "ok"}, headers=ALICE)
    assert reviewed.status_code == 200, reviewed.text
    body = reviewed.json()
    assert body["review"]["reviewer"] == "alice" and "alice-secret" not in reviewed.text
    assert {k: body[k] for k in ("score", "key_points", "fingerprint")} == {k: before[k] for k in ("score", "key_points", "fingerprint")}
    client.post(f"/v1/results/{rid}/review", json={"score": 4}, headers=BOB).raise_for_status()
    assert client.get(f"/v1/results/{rid}").json()["review"]["reviewer"] == "bob"
    history = client.get(f"/v1/results/{rid}/reviews").json()["reviews"]
    assert [(r["reviewer"], r["score"]) for r in history] == [("alice", 3.5), ("bob", 4)]


def test_review_errors_are_401_403_404_and_422_naming_the_field(client):
    rid = _graded_ids(client, ANSWERS[1:2])[0]
    assert client.post(f"/v1/results/{rid}/review", json={"score": 1}).status_code == 401
    assert client.post(f"/v1/results/{rid}/review", json={"score": 1}, headers={"Authorization": "Bearer no"}).status_code == 403
    assert client.post("/v1/results/nope/review", json={"score": 1}, headers=ALICE).status_code == 404
    too_high = client.post(f"/v1/results/{rid}/review", json={"score": 6}, headers=ALICE)
    assert too_high.status_code == 422 and too_high.json()["error"]["field"] == "score"
    unknown = client.post(f"/v1/results/{rid}/review", json={"score": 1, "key_points": {"zzz": "covered"}}, headers=ALICE)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "key_points.zzz"
    bad_status = client.post(f"/v1/results/{rid}/review", json={"score": 1, "key_points": {"x": "great"}}, headers=ALICE)
    assert bad_status.status_code == 422 and bad_status.json()["error"]["field"].startswith("key_points")
    assert client.get("/v1/review", params={"cursor": "garbage"}).json()["error"]["field"] == "cursor"
    assert client.get(f"/v1/results/{rid}").json()["review"] is None


def test_an_answer_or_comment_with_a_nul_character_is_never_a_500(client):
    graded = client.post("/v1/grade", json={"rubric_id": RUBRIC, "answer": "It makes\u0000 training faster."})
    assert graded.status_code == 200, graded.text
    rid = graded.json()["id"]
    assert client.get(f"/v1/results/{rid}").json()["answer"] == "It makes training faster."
    refused = client.post(f"/v1/results/{rid}/review", json={"score": 1, "comment": "ok\u0000"}, headers=ALICE)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "comment", refused.text


def test_queue_and_agreement_over_http(client):
    ids = _graded_ids(client)
    page = client.get("/v1/review", params={"rubric_id": RUBRIC, "limit": 200}).json()
    confidences = [i["confidence"] for i in page["items"]]
    assert confidences == sorted(confidences) and page["next_cursor"] is None
    item = page["items"][0]
    assert set(item) >= {"id", "rubric_id", "answer", "score", "max_score", "confidence", "flags", "key_points"}
    informative = client.get("/v1/review", params={"strategy": "informative", "limit": 3}).json()
    assert len(informative["items"]) <= 3 and informative["next_cursor"] is None
    for rid, human in zip(ids, [5, 3, 2, 0, 0]):
        client.post(f"/v1/results/{rid}/review", json={"score": human}, headers=ALICE).raise_for_status()
    agreement = client.get(f"/v1/rubrics/{RUBRIC}/agreement").json()
    assert agreement["count"] >= 5 and agreement["pearson"] > 0.5
    assert set(agreement) >= {"pearson", "qwk", "mean_difference", "count"}
    assert client.get("/v1/rubrics/no-such-rubric/agreement").status_code == 404


def test_with_require_api_key_every_endpoint_needs_a_key(settings: Settings, grader, store_url, tmp_path):
    for base in _serve(settings, store_url, require_api_key=True, rubrics_dir=tmp_path):
        grade = {"rubric": {"id": "x", "question": "Why?", "key_points": [{"id": "a", "text": "Because."}]}, "answer": "Because."}
        assert httpx.post(f"{base}/v1/grade", json=grade).status_code == 401
        assert httpx.get(f"{base}/v1/rubrics").status_code == 401
        assert httpx.get(f"{base}/v1/review", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert httpx.post(f"{base}/v1/grade", json=grade, headers=BOB, timeout=60).status_code == 200
        assert httpx.get(f"{base}/healthz").status_code == 200


def test_eight_clients_reviewing_one_result_at_once_lose_no_review(client):
    (rid,) = _graded_ids(client, ANSWERS[2:3])

    def review(i: int) -> int:
        key = ALICE if i % 2 else BOB
        return client.post(f"/v1/results/{rid}/review", json={"score": i * 0.5, "comment": f"c{i}"}, headers=key).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(review, range(8))) == [200] * 8
    history = client.get(f"/v1/results/{rid}/reviews").json()["reviews"]
    assert sorted(r["comment"] for r in history) == [f"c{i}" for i in range(8)]
