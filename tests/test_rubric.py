from pathlib import Path

import pytest

from grader.check import check_rubrics
from grader.draft import draft_rubric
from grader.errors import RubricError, UnknownRubric
from grader.rubric import load_rubric, parse_rubric, resolve_rubric
from grader.settings import PROJECT_ROOT

RUBRICS_DIR = PROJECT_ROOT / "rubrics"

GOOD = """id: demo
question: Why normalize data?
max_score: 5
key_points:
  - id: same-scale
    text: Features on the same scale stop large-valued features from dominating distances.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_all_23_shipped_rubrics_load_and_are_well_formed(rubrics):
    assert len(rubrics) == 23
    for rubric in rubrics.values():
        assert 3 <= len(rubric.key_points) <= 7, rubric.id
        assert rubric.max_score == 5


def test_shipped_rubrics_pass_the_check(grader, rubrics):
    assert check_rubrics(list(rubrics.values()), grader.encoder) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("key_points:", "key_points: []\nx:"), "key_points"),
        (GOOD + "  - id: same-scale\n    text: A duplicate id here.\n", "duplicate key point id 'same-scale'"),
        (GOOD.replace("    text:", "    weight: 0\n    text:"), "key_points.0.weight"),
        (GOOD + "colour: blue\n", "colour: Extra inputs are not permitted"),
        ("id: demo\nquestion: [unclosed\n", "invalid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_malformed_rubric_names_file_field_and_problem(tmp_path, text, expected):
    path = write(tmp_path, "demo.yaml", text)
    with pytest.raises(RubricError) as err:
        load_rubric(path)
    assert str(path) in err.value.message and expected in err.value.message


def test_non_utf8_rubric_and_mismatched_file_name_are_rejected(tmp_path):
    latin1 = tmp_path / "demo.yaml"
    latin1.write_bytes(GOOD.replace("Why", "Warum \xfc").encode("latin-1"))
    with pytest.raises(RubricError, match="demo.yaml: not UTF-8"):
        load_rubric(latin1)
    with pytest.raises(RubricError, match="does not match the file name"):
        load_rubric(write(tmp_path, "other.yaml", GOOD))


def test_unknown_rubric_id_lists_known_ids():
    with pytest.raises(UnknownRubric, match="unknown rubric 'nope'.*pca"):
        resolve_rubric("nope", RUBRICS_DIR)


def test_content_hash_changes_with_content_only():
    a = parse_rubric({"id": "x", "question": "Why?", "key_points": [{"id": "a", "text": "Because of this."}]})
    b = parse_rubric({"id": "x", "question": "Why?", "key_points": [{"id": "a", "text": "Because of this."}]})
    c = parse_rubric({"id": "x", "question": "Why?", "key_points": [{"id": "a", "text": "Because of that."}]})
    assert a.content_hash == b.content_hash != c.content_hash


def test_content_hash_is_computed_afresh_for_a_changed_copy():
    # The hash is cached on the (frozen) rubric; a copy with other content must not carry the old value along.
    a = parse_rubric({"id": "x", "question": "Why?", "key_points": [{"id": "a", "text": "Because of this."}]})
    before = a.content_hash
    tuned = a.model_copy(update={"thresholds": {"covered_threshold": 0.7, "partial_threshold": 0.4}})
    assert tuned.content_hash != before == a.content_hash == a.model_copy().content_hash
    assert tuned.content_hash == parse_rubric(tuned.model_dump()).content_hash


def test_check_reports_overlapping_key_points_and_restated_question(grader):
    rubric = parse_rubric(
        {
            "id": "lint-me",
            "question": "What does max-pooling do in a CNN?",
            "key_points": [
                {"id": "a", "text": "Max-pooling keeps the largest value in each window."},
                {"id": "b", "text": "Max pooling keeps the biggest value of every window."},
                {"id": "c", "text": "What max-pooling does in a CNN."},
            ],
        }
    )
    problems = {(w.key_points, w.problem) for w in check_rubrics([rubric], grader.encoder)}
    assert (("a", "b"), "key points too similar to tell apart") in problems
    assert (("c",), "key point restates the question") in problems


def test_draft_turns_reference_sentences_into_key_points_and_merges_fragments():
    rubric = draft_rubric(
        "What is a stack?",
        "A stack is a last-in first-out data structure. Push adds an item on top; pop removes the top item. Yes.",
    )
    assert [kp.text for kp in rubric.key_points] == [
        "A stack is a last-in first-out data structure.",
        "Push adds an item on top",
        "pop removes the top item. Yes.",
    ]
    assert rubric.id.startswith("draft-") and rubric.max_score == 5
