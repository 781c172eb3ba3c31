"""From similarities to a grade: per key point status and credit, coverage, score and confidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .calibrate import Calibration, features_from
from .guards import polarity_flipped, states_claim, swaps_counterpart
from .mapping import POINT_FEATURES, ScoreMapping
from .match import RubricVectors, Similarities, Span, alignment, span_text, token_matches
from .result import Evidence, KeyPointVerdict, Status
from .rubric import Rubric
from .segment import Clause
from .settings import Thresholds

EVIDENCE_LEVERAGE = 2.0  # the mapped share is at most this multiple of the expected coverage
WORDS_PER_POINT = 8  # a clause can carry one unrelated key point per this many words
RELATED_KEY_POINTS = 0.65  # key points this similar to each other may share their evidence
FILLER_SIMILARITY = 0.30  # a clause this far from every key point is filler, never part of a window
# A sentence this long that is not clearly about one key point by itself (CLEAR_EVIDENCE) is filler
# too ("Deep learning is a fascinating area ..."): on the topic, so near the key points, but it states
# none of them. Shorter pieces ("The algorithm alternates two steps.") often only make sense with their
# neighbour and may join a window.
FILLER_WORDS = 12
# Weak evidence must be nearer the key point than the question itself is, by QUESTION_MARGIN: the
# question is on the topic and states nothing, so on-topic talk that comes no closer has not made the
# point. From CLEAR_EVIDENCE up a span is evidence whatever the question says, so a key point that
# mostly restates the question keeps a partial band. With FILLER_WORDS this took the padding attack
# from 7 to 12 of 12 (eval/ATTACKS.md; the measurements are in eval/experiments.md).
QUESTION_MARGIN = 0.05
CLEAR_EVIDENCE = 0.50
# Stating one of a key point's listed contradictions (a known wrong claim the rubric's author wrote down)
# costs the point's weight instead of only earning nothing, like a misconception: misconception examples
# 1.83 -> 1.17 of 5 (expected 0.7). Denials found by the negation guard alone earn 0: that guard is
# noisier (eval/experiments.md), and drafted rubrics, which have no listed contradictions, are unaffected.
LISTED_CONTRADICTION_CREDIT = -1.0
# A listed contradiction is a claim; a clause of fewer words names a topic ("Batch norm.") and states none, however
# near the contradiction's subject it comes.
CLAIM_WORDS = 3
# A key point no span comes near enough in embedding space is still partly made by a span that uses at
# least this share of its words beyond the question's ("by reference by default, unless you specify const"
# for "by reference."): MiniLM often puts such short or terse answers below the partial threshold. The
# 140 Mohler answers this credits had a human mean of 4.4 of 5 (all answers 4.2); the 168 SAF training
# answers 0.85 of 1 (all 0.73) (eval/experiments.md). The words extend the partial band downwards by its
# own width (0.22 below the partial threshold by default), so strict thresholds stay strict; the span must
# not deny the point, and a bare list of terms stays capped at keyword_list_credit.
WORD_EVIDENCE = 0.5
WORD_CREDIT = 0.5
EVIDENCE_MARGIN = 0.10  # a span supports key points within this of its nearest key point
CONFIDENCE_MARGIN = 0.10  # a similarity this far from every threshold is a confident call
ZERO_SCORE_FLAGS = {
    "no_answer", "off_topic", "grader_instruction", "gibberish", "other_language", "question_restated_only",
}
CERTAIN_ZERO_FLAGS = {"no_answer", "off_topic"}  # a zero for these is as sure as the flag; the rest need a look
REVIEW_FLAGS = {"grader_instruction", "gibberish", "other_language", "contradiction", "short_answer"}


@dataclass(frozen=True)
class Wording:
    """What the judge reads from an answer's words alone (``grader.grade.read_wording``): no vectors needed,
    so it is worked out while the model reads the answer."""

    text: str
    flags: list[str]  # no_answer, other_language or gibberish
    instruction: np.ndarray  # (n_clauses,) bool: talks to the grader
    keyword: np.ndarray  # (n_clauses,) bool: a bare list of terms (all of them when the whole answer is one)
    span_words: np.ndarray  # (S, K) each span's share of each key point's words beyond the question's


@dataclass
class AnswerView:
    """What the judge knows about one answer beyond its similarities."""

    wording: Wording
    clauses: list[Clause]
    spans: list[Span]
    excluded: np.ndarray  # (n_clauses,) bool: restated question or instruction, earns nothing
    nearest_point: np.ndarray  # (n_clauses,) each clause's similarity to the key point it is nearest
    clause_tokens: list[np.ndarray]  # word-token vectors per clause (``Encoder.encode_with_tokens``)
    flags: list[str] = field(default_factory=list)


def _evidence(view: AnswerView, span: Span, similarity: float) -> Evidence:
    return Evidence(
        text=view.wording.text[span.start : span.end], start=span.start, end=span.end, similarity=round(float(similarity), 4)
    )


def credit_for(similarity: float, t: Thresholds) -> tuple[Status, float]:
    """Covered earns 1; partial earns 0.5 at the partial threshold rising to 1 at the covered one."""
    if similarity >= t.covered_threshold:
        return "covered", 1.0
    if similarity >= t.partial_threshold:
        ramp = (similarity - t.partial_threshold) / (t.covered_threshold - t.partial_threshold)
        return "partial", 0.5 + 0.5 * ramp
    return "missing", 0.0


def _clause_capacity(clause: Clause) -> int:
    """How many unrelated key points one clause may carry: a short clause states one thing."""
    return max(1, len(clause.text.split()) // WORDS_PER_POINT)


@dataclass
class Judgement:
    """The verdicts of one answer and, per key point, the features of its accepted evidence."""

    verdicts: list[KeyPointVerdict]
    features: np.ndarray  # (K, len(POINT_FEATURES)), all 0 for a point with no accepted evidence or denied
    keyword_evidence: np.ndarray  # (K,) bool: the point's evidence is a bare list of terms


def judge_key_points(
    rubric: Rubric, rv: RubricVectors, sims: Similarities, view: AnswerView, t: Thresholds
) -> Judgement:
    """Status, credit and evidence per key point.

    A clause that says the opposite of a key point (negation, antonym, or a listed contradiction
    stated with the same polarity) cannot support it, nor can a window that contains it; when the
    opposite is said more strongly than the point is supported, the point is contradicted. One span
    cannot be the evidence for more unrelated key points than it has room to state, so a bare list
    of terms or one generic sentence does not collect credit for everything it is near. Evidence must
    come nearer a key point than the question does, and a long sentence that makes no point by itself
    never joins a window: padding an answer with on-topic filler does not add credit. A point the
    embeddings miss is partial when one span uses most of its words beyond the question's (WORD_EVIDENCE).
    """
    n_clauses, n_kp = len(view.clauses), len(rubric.key_points)
    span_excluded = np.array([view.excluded[list(s.clauses)].any() for s in view.spans], dtype=bool)
    # Windows join clauses that are each about the rubric; a filler clause only adds noise to a window.
    clause_points = sims.key_points[:n_clauses]
    gate = np.minimum(rv.question_similarity + QUESTION_MARGIN, min(CLEAR_EVIDENCE, t.covered_threshold))  # (K,)
    makes_point = (clause_points >= max(t.partial_threshold, CLEAR_EVIDENCE)).any(axis=1)
    long = np.array([len(c.text.split()) >= FILLER_WORDS for c in view.clauses], dtype=bool)
    filler = (clause_points.max(axis=1) < FILLER_SIMILARITY) | (long & ~makes_point)
    # Alignment reads every clause that may earn credit. It informs the calibration and the reader, not
    # the credit: it rises with every word added, so as credit it let padding raise the score of 5-6 of
    # 12 padded answers, and of 2-3 with filler clauses left out (eval/experiments.md, round five).
    matches = token_matches(view.clause_tokens, rv)  # (n_clauses, N) each key-point token's best match per clause
    aligned = alignment(np.where(view.excluded[:, None], 0.0, matches).max(axis=0, keepdims=True), rv)[0]
    span_excluded |= np.array([s.last > s.first and filler[list(s.clauses)].any() for s in view.spans], dtype=bool)
    span_keywords = np.array([view.wording.keyword[list(s.clauses)].all() for s in view.spans], dtype=bool)
    support = np.where(span_excluded[:, None], -1.0, sims.key_points)  # (S, K)
    # The same per key point: a long sentence that does not make point k by itself cannot join a window as evidence
    # for k. A window pooled from its clauses' vectors comes nearer a point than either clause when they point
    # different ways, so without this a filler sentence beside a statement raised it (eval/experiments.md, issue 19).
    off_point = long[:, None] & (clause_points < max(t.partial_threshold, CLEAR_EVIDENCE))  # (n_clauses, K)
    window_off = np.stack([off_point[list(s.clauses)].any(axis=0) & (s.last > s.first) for s in view.spans])
    support = np.where(window_off, -1.0, support)
    nearest_any = support.max(axis=0)  # reported for missing points: how near the answer came at all
    # A span that comes no nearer a key point than the question does is on the topic, not evidence.
    support = np.where(support < gate, -1.0, support)
    topic = support.copy()  # what each span is about, before denied points are struck from it
    # A clause states a listed contradiction only when that is the nearest thing the rubric says.
    nearest_point = view.nearest_point
    against = np.full(n_kp, -1.0)
    against_at = np.zeros(n_kp, dtype=int)
    listed = np.zeros(n_kp, dtype=bool)  # denied by stating one of the rubric's own contradictions
    denied = np.zeros(support.shape, dtype=bool)  # (S, K) the span contains a clause that denies the point
    for k in range(n_kp):
        for c in np.flatnonzero(
            (sims.contradictions[:n_clauses, k] >= t.contradiction_threshold)
            & (sims.contradictions[:n_clauses, k] >= nearest_point + t.contradiction_margin)
            & ~span_excluded[:n_clauses]
        ):
            text, clause = rv.contradiction_texts[sims.best_contradiction[c, k]], view.clauses[c].text
            context = [rubric.key_points[k].text, *rubric.key_points[k].paraphrases]
            if (
                sims.contradictions[c, k] > against[k]
                and len(clause.split()) >= CLAIM_WORDS
                and not polarity_flipped(text, clause)
                and states_claim(text, context, clause)
            ):
                against[k], against_at[k], listed[k] = sims.contradictions[c, k], c, True
        # Only clauses about this key point (near it, and nearer to it than to others) can deny it.
        flipped = np.zeros(n_clauses, dtype=bool)
        about = (support[:n_clauses, k] >= t.partial_threshold) & (
            support[:n_clauses, k] >= nearest_point - EVIDENCE_MARGIN
        )
        for c in np.flatnonzero(about):
            clause = view.clauses[c].text
            # Naming the counterpart swaps roles only in a clause that says this point's thing more than any other's.
            swapped = clause_points[c].argmax() == k and swaps_counterpart(rv.contrasts[k], clause)
            flipped[c] = polarity_flipped(rv.target_texts[sims.best_target[c, k]], clause) != swapped
        if flipped.any():
            c = int(np.flatnonzero(flipped)[support[:n_clauses, k][flipped].argmax()])
            if support[c, k] > against[k]:
                against[k], against_at[k], listed[k] = support[c, k], c, False
            touches = np.array([flipped[list(s.clauses)].any() for s in view.spans], dtype=bool)
            support[touches, k] = -1.0
            denied[touches, k] = True
    # Accepted evidence for the mapping's features: every span the guards let stand for the point (above the
    # question gate, not a restated question or instruction, not a filler window, not denying it, not a bare
    # list of terms, whose only credit is the capped one), before spans are shared out.
    accepted = np.where(span_keywords[:, None], -1.0, support)
    # Judged clause against clause, before spans are shared out: a denial stands unless another clause
    # clearly supports the point better (windows would let the undenied half of a point outvote it).
    clause_support = support[:n_clauses].max(axis=0)
    contradicted = (against >= t.contradiction_threshold) & (clause_support <= against + t.contradiction_margin)

    # A span is evidence for the key points it is nearest to, not for every point it is loosely near.
    # A span that denies the point it is about is not evidence for its neighbours either ("it is not true that a
    # model that is too simple needs more capacity" does not state what underfitting is).
    nearest = topic.max(axis=1, keepdims=True)
    related = rv.key_point_similarity[topic.argmax(axis=1)] >= RELATED_KEY_POINTS  # (S, K)
    support = np.where((support >= nearest - EVIDENCE_MARGIN) | related, support, -1.0)
    # Greedy assignment, strongest key point first. Each clause has room for a few unrelated points;
    # a window uses the room of the clause that carries the point, so re-combining the same clause
    # with filler or repeats cannot earn it a second time.
    room = np.array([_clause_capacity(c) for c in view.clauses])
    owners: list[list[int]] = [[] for _ in view.clauses]
    # (S, K) the clause of each span nearest each key point (the first of equals)
    carriers = np.array([s.first + clause_points[s.first : s.last + 1].argmax(axis=0) for s in view.spans])
    best = np.zeros(n_kp, dtype=int)
    for k in np.argsort(-support.max(axis=0), kind="stable"):
        k = int(k)
        unrelated = [sum(rv.key_point_similarity[k, o] < RELATED_KEY_POINTS for o in owned) for owned in owners]
        free = np.array(unrelated) < room
        carrier = carriers[:, k]
        column = np.where(free[carrier], support[:, k], -1.0)
        best[k] = int(column.argmax())
        if column[best[k]] >= t.partial_threshold:
            owners[carrier[best[k]]].append(k)
        support[:, k] = column

    words = np.where(span_excluded[:, None] | denied, 0.0, view.wording.span_words)  # (S, K)
    # Each span's alignment with each key point, over the words of its own (not excluded) clauses only.
    kept_matches = np.where(view.excluded[:, None], 0.0, matches)
    span_aligned = alignment(np.stack([kept_matches[s.first : s.last + 1].max(axis=0) for s in view.spans]), rv)
    features = np.zeros((n_kp, len(POINT_FEATURES)))
    keyword_evidence = np.zeros(n_kp, dtype=bool)
    verdicts = []
    for k, kp in enumerate(rubric.key_points):
        sim = float(support[best[k], k])
        if contradicted[k]:
            status, credit = "contradicted", (LISTED_CONTRADICTION_CREDIT if listed[k] else 0.0)
        else:
            status, credit = credit_for(sim, t)
            j = int(words[:, k].argmax())
            if (
                status == "missing"
                and words[j, k] >= WORD_EVIDENCE
                and sims.key_points[j, k] >= t.partial_threshold - (t.covered_threshold - t.partial_threshold)
                and not polarity_flipped(kp.text, span_text(view.clauses, view.spans[j]))
            ):
                best[k], sim = j, float(sims.key_points[j, k])
                status, credit = "partial", WORD_CREDIT
            if credit > t.keyword_list_credit and span_keywords[best[k]]:
                status, credit = "partial", t.keyword_list_credit
                if "keyword_list" not in view.flags:
                    view.flags.append("keyword_list")
        if status != "contradicted":
            features[k] = _evidence_features(k, accepted, span_aligned, words, rv, credit)
            keyword_evidence[k] = status != "missing" and bool(span_keywords[best[k]])
        verdicts.append(
            KeyPointVerdict(
                id=kp.id,
                text=kp.text,
                weight=kp.weight,
                status=status,
                similarity=round(max(sim if status != "missing" else float(nearest_any[k]), 0.0), 4),
                credit=round(credit, 4),
                alignment=round(float(aligned[k]), 4),
                features=dict(zip(POINT_FEATURES, np.round(features[k], 4).tolist())),
                evidence=_evidence(view, view.spans[best[k]], sim) if status != "missing" and sim > 0 else None,
                contradiction=_evidence(view, view.spans[against_at[k]], against[k]) if contradicted[k] else None,
            )
        )
    return Judgement(verdicts, np.round(features, 4), keyword_evidence)


def _evidence_features(k, accepted, span_aligned, words, rv, credit) -> tuple[float, ...]:
    """``POINT_FEATURES`` of key point ``k``: maxima over the spans accepted as its evidence (0 without any).

    A maximum over accepted spans only grows when the added text is itself evidence for the point,
    unlike a maximum over every word of the answer, which grows with anything appended.
    """
    ok = accepted[:, k] > 0
    if not ok.any():
        return (0.0, 0.0, 0.0, 0.0, max(credit, 0.0))
    sim = float(accepted[ok, k].max())
    base = min(float(rv.question_similarity[k]), 0.95)
    relative = min(max((sim - base) / (1.0 - base), 0.0), 1.0)
    return (min(sim, 1.0), relative, float(span_aligned[ok, k].max()), float(words[ok, k].max()), max(credit, 0.0))


def coverage_of(rubric: Rubric, verdicts: list[KeyPointVerdict]) -> float:
    """Weighted share of credit, 0..1 (a stated contradiction's negative credit cannot push it below 0)."""
    total = sum(v.weight for v in verdicts)
    return max(0.0, sum(v.weight * v.credit for v in verdicts) / total)


def points_for(
    rubric: Rubric,
    verdicts: list[KeyPointVerdict],
    coverage: float,
    calibration: Calibration | None = None,
    question_similarity: np.ndarray | None = None,
    word_share: np.ndarray | None = None,
) -> float:
    """Points before penalties: the band of the covered count, or weighted coverage x max_score
    (through the calibration's mapping to the human scale when one is loaded)."""
    if rubric.scoring.mode == "count":
        count = sum(1.0 if v.status == "covered" else 0.5 if v.status == "partial" else 0.0 for v in verdicts)
        return count_points(rubric, count)
    if calibration is not None:
        features = features_from(verdicts, coverage, question_similarity, word_share)
        return calibration.share_of(features) * rubric.max_score
    return coverage * rubric.max_score


@dataclass(frozen=True)
class ShareLimits:
    """What the guards allow one answer's mapped share, whatever the curve (or a reviewed neighbour) says.

    ``expected`` is the expected coverage the curve reads; ``taken_off`` the weight share of contradicted
    points; ``ceiling`` the most a bare list of terms leaves room for; ``stated`` whether any key point is
    covered or partial (otherwise the machine's share is 0).
    """

    expected: float
    taken_off: float
    ceiling: float
    stated: bool

    @classmethod
    def of(
        cls, weights: np.ndarray, p: np.ndarray, statuses: list[str], keyword_evidence: np.ndarray, keyword_list_credit: float
    ) -> ShareLimits:
        weights = np.asarray(weights, dtype=float)
        total = weights.sum()
        contradicted = np.array([s == "contradicted" for s in statuses], dtype=bool)
        keyword = np.asarray(keyword_evidence, dtype=bool)
        return cls(
            expected=expected_coverage(weights, p),
            taken_off=float(weights[contradicted].sum()) / total,
            ceiling=1.0 - float(weights[keyword].sum()) * (1.0 - keyword_list_credit) / total,
            stated=any(s in ("covered", "partial") for s in statuses),
        )

    def start(self, mapping: ScoreMapping) -> float:
        """The machine's share before any review pull: the curve's, or 0 when no key point is stated.

        An answer that only talks about the topic gets nothing from the curve (it would lend a vague answer
        something); reviewed answers near it (``grader.review_calibration``) can still lift it, since a person
        judged what it says: on Mohler the 587 answers the grader finds no key point in got 3.27 of 5 from people.
        """
        return curve_share(mapping, self.expected) if self.stated else 0.0

    def apply(self, share: float) -> float:
        """The guards' hard effects on a (pulled) share: a contradicted point's weight comes off, a bare list of
        terms stays under its ceiling."""
        return max(0.0, min(share - self.taken_off, self.ceiling))


def expected_coverage(weights: np.ndarray, p: np.ndarray) -> float:
    """Weighted mean probability that the key points are stated: what the mapping's isotonic curve reads."""
    weights = np.asarray(weights, dtype=float)
    return float(weights @ np.asarray(p, dtype=float)) / float(weights.sum())


def mapped_points(
    rubric: Rubric,
    judgement: Judgement,
    mapping: ScoreMapping,
    t: Thresholds,
    pull: Callable[[float], float] | None = None,
) -> tuple[float, np.ndarray]:
    """Points under a ``ScoreMapping`` (before misconception penalties and zero flags) and each point's probability.

    The guards' hard effects are applied after the mapping, so no fit can undo them: an answer that
    states no key point (none covered or partial) gets no share from the curve; a contradicted point has
    probability 0 and its weight share is taken off the mapped score; a point evidenced only by a bare list
    of terms can add at most ``keyword_list_credit`` of its weight; and the share is at most
    ``EVIDENCE_LEVERAGE`` times the expected coverage. ``pull`` (a review calibration's reviewed neighbours,
    ``grader.review_calibration``) moves the machine's share before the contradiction and keyword effects,
    so reviews cannot undo those; it can lift an answer in which the grader found no key point, because a
    person graded answers like it. Zero flags and misconception penalties come after, in ``Grader._judge``.
    """
    verdicts = judgement.verdicts
    weights = np.array([v.weight for v in verdicts], dtype=float)
    statuses = [v.status for v in verdicts]
    p = np.where([s == "contradicted" for s in statuses], 0.0, mapping.probability(judgement.features))
    p = np.where(judgement.keyword_evidence, np.minimum(p, t.keyword_list_credit), p)
    limits = ShareLimits.of(weights, p, statuses, judgement.keyword_evidence, t.keyword_list_credit)
    if rubric.scoring.mode == "count":  # a point only talked about (missing) is never counted as named
        stated = np.array([s in ("covered", "partial") for s in statuses], dtype=bool)
        return count_points(rubric, float(np.floor(p[stated].sum() + 0.5))), p  # to the nearest whole point
    share = limits.start(mapping)
    if pull is not None:
        share = pull(share)
    return limits.apply(share) * rubric.max_score, p


def curve_share(mapping: ScoreMapping, expected: float) -> float:
    """The mapping's share for an expected coverage, at most ``EVIDENCE_LEVERAGE`` times it.

    Human graders are lenient (SAF gives a vague answer 0.1-0.2 of full marks), but a grade is never more
    than EVIDENCE_LEVERAGE times the share of the rubric the evidence states: one vague partial point of
    seven (an answer about database connection pools to a max-pooling question) earns little, not 0.23.
    """
    return min(float(mapping.share(expected)), EVIDENCE_LEVERAGE * expected)


def count_points(rubric: Rubric, count: float) -> float:
    """The band of ``count`` stated key points: the highest band at or below it; 0 below the lowest band."""
    reached = [n for n in rubric.scoring.bands if n <= count]
    return float(rubric.scoring.bands[max(reached)]) if reached else 0.0


def confidence_of(verdicts: list[KeyPointVerdict], flags: list[str], t: Thresholds) -> float:
    """High when every similarity is far from the thresholds that decide its status, lower with flags."""
    margins = [
        min(abs(v.similarity - t.covered_threshold), abs(v.similarity - t.partial_threshold)) for v in verdicts
    ]
    weights = [v.weight for v in verdicts]
    conf = float(np.average([min(1.0, m / CONFIDENCE_MARGIN) for m in margins], weights=weights))
    if set(flags) & ZERO_SCORE_FLAGS - CERTAIN_ZERO_FLAGS:
        return min(conf, 0.3)
    for flag in ("keyword_list", "question_restated", "too_long", "contradiction", "short_answer"):
        if flag in flags:
            conf *= 0.8
    return round(conf, 4)
