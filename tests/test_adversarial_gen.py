"""The generated attack set: deterministic, never on the attack test set's rubrics, targets that fit their kind."""

import pytest

from eval.adversarial_gen import KINDS, excluded_rubric_ids, generate, negate, share_of
from grader.draft import draft_rubric
from grader.rubric import load_rubrics
from grader.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def pool():
    drafted = draft_rubric(
        "What does the transport layer do?",
        "It provides end-to-end delivery between processes. TCP retransmits lost segments. "
        "UDP sends datagrams without a connection.",
        "q-transport",
        1.0,
    )
    return [*load_rubrics(PROJECT_ROOT / "rubrics").values(), drafted]


@pytest.fixture(scope="module")
def generated(pool):
    return generate(pool, seed=7, per_kind=2)


def test_same_rubrics_and_seed_give_the_same_rows(pool, generated):
    assert generate(pool, seed=7, per_kind=2).equals(generated)
    assert not generate(pool, seed=8, per_kind=2).equals(generated)


def test_a_rubrics_rows_do_not_depend_on_the_other_rubrics(pool, generated):
    alone = generate([r for r in pool if r.id == "q-transport"] + pool[:3], seed=7, per_kind=2)
    mine = lambda f: f[(f.rubric_id == "q-transport") & (f.kind != "off_topic")].reset_index(drop=True)  # noqa: E731
    assert mine(alone).equals(mine(generated))


def test_attack_test_set_rubrics_never_appear(generated):
    excluded = excluded_rubric_ids()
    assert len(excluded) == 12
    assert not excluded & set(generated["rubric_id"])
    assert set(KINDS) == set(generated["kind"])


def test_targets_fit_their_kind(pool, generated):
    rubrics = {r.id: r for r in pool}
    assert generated["target"].between(0, 1).all()
    by_kind = generated.groupby("kind")["target"]
    assert (by_kind.get_group("correct") == 1).all()
    for kind in ("restated", "injected", "off_topic"):
        assert (by_kind.get_group(kind) == 0).all(), kind
    assert (by_kind.get_group("keyword_list") <= 0.25).all()
    assert (by_kind.get_group("negated") < 1).all() and (by_kind.get_group("partial") < 1).all()
    for row in generated[generated["kind"].isin(["partial", "padded", "negated"])].itertuples():
        stated = set(row.stated.split(" | ")) if row.stated else set()
        assert row.target == pytest.approx(share_of(rubrics[row.rubric_id], stated), abs=1e-4), row


def test_negation_negates_the_claim_not_a_condition():
    assert negate("Max pooling keeps the largest value.") == "Max pooling does not keep the largest value."
    assert negate("The header is fixed.") == "The header is not fixed."
    assert negate("It has no learnable parameters.") is None  # negative already
    assert negate("Local minima matter when the loss is convex.") is None  # "is" belongs to the condition
