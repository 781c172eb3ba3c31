"""Similarity of answer spans to a rubric's key points, as matrix products over unit vectors.

Spans are the clauses, windows of 2-3 adjacent clauses (a point may be made across a clause
boundary) and, for short answers, the whole answer. Each key point is compared with its text and
its paraphrases (the best wins), and separately with its contradictions.

Beside the sentence vectors, each key point is aligned word by word with the answer (``alignment``):
the model's contextual vector of every word token of the key point finds its nearest token in the
answer, as BERTScore's recall does. A sentence vector averages a short reference and a short answer
into a blur in which a correct paraphrase and a wrong answer on the topic land equally near; the
token alignment keeps which of the key point's words the answer expresses, in any wording
(eval/experiments.md, round five).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .guards import content_stems, contrasted_terms
from .rubric import Rubric
from .segment import Clause

MAX_WINDOW = 3  # clauses per window; longer windows dilute the embedding more than they add
WHOLE_ANSWER_MAX_CLAUSES = 8  # above this the whole answer is too diluted to be useful evidence


def rubric_texts(rubric: Rubric) -> list[str]:
    """Every text of a rubric to embed, in the fixed order ``RubricVectors.from_embeddings`` expects."""
    texts = [rubric.question]
    for kp in rubric.key_points:
        texts += [kp.text, *kp.paraphrases, *kp.contradictions]
    texts += [m.text for m in rubric.misconceptions]
    return texts


def token_texts(rubric: Rubric) -> list[str]:
    """The rubric texts aligned token by token: the question, then each key point's text and paraphrases."""
    return [rubric.question, *(t for kp in rubric.key_points for t in (kp.text, *kp.paraphrases))]


@dataclass(frozen=True)
class RubricVectors:
    """A rubric's embeddings, grouped so one matrix product scores every key point."""

    question: np.ndarray  # (d,)
    targets: np.ndarray  # (T, d) key point texts and paraphrases, grouped by key point
    target_texts: list[str]
    target_starts: np.ndarray  # (K,) first target row of each key point
    contradictions: np.ndarray  # (C, d)
    contradiction_owner: np.ndarray  # (C,) key point index of each contradiction
    contradiction_texts: list[str]
    misconceptions: np.ndarray  # (M, d)
    key_point_similarity: np.ndarray  # (K, K) between key point texts
    question_similarity: np.ndarray  # (K,) of each key point's own text to the question
    target_words: StemBags  # the content-word stems of each target
    new_words: StemBags  # the same, without the stems the question uses
    tokens: np.ndarray  # (N, d) the word tokens of every target, target after target
    token_weights: np.ndarray  # (N,) how far each token is from every word of the question (1 - nearest)
    token_starts: np.ndarray  # (T,) first token row of each target
    contrasts: list[dict]  # (K,) per key point, its named terms whose counterparts other points name (guards)

    @classmethod
    def from_embeddings(
        cls, rubric: Rubric, vectors: np.ndarray, tokens: list[np.ndarray] | None = None
    ) -> "RubricVectors":
        """From the embeddings of ``rubric_texts`` and the word-token vectors of ``token_texts``.

        Without ``tokens`` (a rubric check that grades nothing) the alignment is 0 everywhere.
        """
        rows = iter(range(len(vectors)))
        question = vectors[next(rows)]
        targets, texts, starts, contra, owner, contra_texts, main = [], [], [], [], [], [], []
        for k, kp in enumerate(rubric.key_points):
            starts.append(len(targets))
            main.append(len(targets))  # the key point's own text leads its group
            for text in (kp.text, *kp.paraphrases):
                targets.append(vectors[next(rows)])
                texts.append(text)
            for text in kp.contradictions:
                contra.append(vectors[next(rows)])
                owner.append(k)
                contra_texts.append(text)
        misconceptions = [vectors[next(rows)] for _ in rubric.misconceptions]
        dim = vectors.shape[1]
        targets_arr = np.asarray(targets, dtype=np.float32)
        kp_vecs = targets_arr[main]
        target_words, new_words = _target_words(texts, rubric.question)
        asked, *per_target = tokens if tokens is not None else [np.zeros((0, dim), np.float32)] * (1 + len(texts))
        # A target with no word token keeps one zero-weight row, so every target owns a slice.
        per_target = [t if len(t) else np.zeros((1, dim), np.float32) for t in per_target]
        token_rows = np.concatenate(per_target).astype(np.float32)
        nearest_asked = (token_rows @ asked.T).max(axis=1, initial=0.0)
        weights = np.where(np.abs(token_rows).sum(axis=1) > 0, 1.0 - np.clip(nearest_asked, 0.0, 1.0), 0.0)
        return cls(
            question=question,
            targets=targets_arr,
            target_texts=texts,
            target_starts=np.asarray(starts),
            contradictions=np.asarray(contra, dtype=np.float32).reshape(-1, dim),
            contradiction_owner=np.asarray(owner, dtype=int),
            contradiction_texts=contra_texts,
            misconceptions=np.asarray(misconceptions, dtype=np.float32).reshape(-1, dim),
            key_point_similarity=kp_vecs @ kp_vecs.T,
            question_similarity=kp_vecs @ question,
            target_words=target_words,
            new_words=new_words,
            tokens=token_rows,
            token_weights=weights.astype(np.float32),
            token_starts=np.cumsum([0, *(len(t) for t in per_target[:-1])]),
            contrasts=contrasted_terms([" ".join([kp.id, kp.text, *kp.paraphrases]) for kp in rubric.key_points]),
        )


@dataclass(frozen=True)
class StemBags:
    """Which of a rubric's content-word stems each target uses, to measure the share of them a text uses.

    Asked for every span of every answer: a dict lookup per stem and one small matrix product, where a
    vectorizer's transform built and multiplied sparse matrices (a sixth of judging, measured with py-spy).
    """

    vocabulary: dict[str, int]  # stem -> column
    rows: np.ndarray  # (T, V) 1 where a target uses the stem

    @classmethod
    def of(cls, texts: list[str], left_out: frozenset[str] = frozenset()) -> StemBags:
        stems = [content_stems(t) - left_out for t in texts]
        vocabulary = {s: j for j, s in enumerate(sorted(set().union(*stems)))}
        rows = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
        for i, own in enumerate(stems):
            rows[i, [vocabulary[s] for s in own]] = 1.0
        return cls(vocabulary, rows)

    def shares(self, texts: list[str]) -> np.ndarray:
        """(len(texts), T): the share of each target's stems that each text uses (0 for a target without any)."""
        used = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float32)
        for i, text in enumerate(texts):
            used[i, [j for s in content_stems(text) if (j := self.vocabulary.get(s)) is not None]] = 1.0
        # Whole counts (exact in float32) times each target's 1 / size in float32: bit for bit the shares of
        # the sparse product this replaced, so no grade moved.
        return (used @ self.rows.T) * (1.0 / np.maximum(self.rows.sum(axis=1), 1.0)).astype(np.float32)


def _target_words(texts: list[str], question: str) -> tuple[StemBags, StemBags]:
    """The stems of each target: all of them, and those the question does not use."""
    return StemBags.of(texts), StemBags.of(texts, left_out=content_stems(question))


def _shares(texts: list[str], rv: RubricVectors, bags: StemBags) -> np.ndarray:
    """(len(texts), K): the share of each key point's stems in ``bags`` that each text uses, best over its paraphrases."""
    return np.maximum.reduceat(bags.shares(texts), rv.target_starts, axis=1)


def span_new_words(texts: list[str], rv: RubricVectors) -> np.ndarray:
    """(len(texts), K): the share of each key point's words beyond the question's that each text uses."""
    return _shares(texts, rv, rv.new_words)


def word_share(text: str, rv: RubricVectors) -> np.ndarray:
    """(K,) the share of each key point's content-word stems that ``text`` uses (best over its paraphrases).

    A second signal beside the embeddings, for the calibration: MiniLM puts a correct paraphrase of a
    one-line reference at 0.3-0.5 as often as a wrong answer on the topic, while the words a reference
    names (the term, the structure, the operation) separate them better (eval/experiments.md).
    """
    return _shares([text], rv, rv.target_words)[0]


def token_matches(clause_tokens: list[np.ndarray], rv: RubricVectors) -> np.ndarray:
    """(n_clauses, N): for each clause, every key-point token's similarity to its nearest token there."""
    out = np.zeros((len(clause_tokens), len(rv.tokens)), dtype=np.float32)
    if clause_tokens and sum(len(t) for t in clause_tokens):
        sims = rv.tokens @ np.concatenate(clause_tokens).T  # (N, all clause tokens)
        sizes = np.array([len(t) for t in clause_tokens])
        has = sizes > 0
        out[has] = np.maximum.reduceat(sims, np.cumsum([0, *sizes[:-1]])[has], axis=1).T
    return np.clip(out, 0.0, 1.0)


def alignment(matches: np.ndarray, rv: RubricVectors) -> np.ndarray:
    """(M, K) how much of each key point's wording a text expresses, 0..1 (best over its paraphrases).

    ``matches`` (M, N) hold each key-point token's similarity to its nearest token in each of M texts
    (``token_matches``, or its maximum over the clauses of a span or of the whole answer). The mean
    over a key point's tokens is weighted by how far each is from every word of the question, since
    repeating the question's words says nothing.
    """
    matched = np.add.reduceat(matches * rv.token_weights, rv.token_starts, axis=1)  # (M, T)
    total = np.add.reduceat(rv.token_weights, rv.token_starts)
    per_target = np.where(total > 0, matched / np.maximum(total, 1e-6), 0.0)
    return np.maximum.reduceat(per_target, rv.target_starts, axis=1).astype(np.float32)


@dataclass(frozen=True)
class Span:
    """Adjacent clauses ``first..last`` of an answer, compared as one text."""

    first: int
    last: int
    start: int
    end: int

    @property
    def clauses(self) -> range:
        return range(self.first, self.last + 1)


def answer_spans(clauses: list[Clause]) -> list[Span]:
    """Clauses first (span i is clause i), then windows, then the whole answer when it is short."""
    n = len(clauses)
    spans = [Span(i, i, c.start, c.end) for i, c in enumerate(clauses)]
    for size in range(2, MAX_WINDOW + 1):
        spans += [
            Span(i, i + size - 1, clauses[i].start, clauses[i + size - 1].end)
            for i in range(n - size + 1)
            if not any(c.after_repeat for c in clauses[i + 1 : i + size])
        ]
    if MAX_WINDOW < n <= WHOLE_ANSWER_MAX_CLAUSES and not any(c.after_repeat for c in clauses):
        spans.append(Span(0, n - 1, clauses[0].start, clauses[-1].end))
    return spans


def span_text(clauses: list[Clause], span: Span) -> str:
    """The text embedded for a span: its clauses joined (repeats dropped by the caller stay dropped)."""
    return " ".join(c.text for c in clauses[span.first : span.last + 1])


@dataclass(frozen=True)
class Similarities:
    """All similarities of one answer against one rubric."""

    key_points: np.ndarray  # (S, K) best over each key point's text and paraphrases
    best_target: np.ndarray  # (S, K) index into RubricVectors.target_texts of that best
    contradictions: np.ndarray  # (S, K) best over each key point's contradictions; -1 if it has none
    best_contradiction: np.ndarray  # (S, K) index into contradiction_texts
    question: np.ndarray  # (S,)
    misconceptions: np.ndarray  # (S, M)


def similarities(span_vectors: np.ndarray, rv: RubricVectors) -> Similarities:
    """One matrix product per kind of rubric text; reductions per key point stay vectorized."""
    n_spans, n_kp = len(span_vectors), len(rv.target_starts)
    target_sim = span_vectors @ rv.targets.T  # (S, T)
    owner = np.repeat(np.arange(n_kp), np.diff(np.append(rv.target_starts, len(rv.targets))))
    kp_sim = np.full((n_spans, n_kp), -1.0, dtype=np.float32)
    best_target = np.zeros((n_spans, n_kp), dtype=int)
    contra_sim = np.full((n_spans, n_kp), -1.0, dtype=np.float32)
    best_contra = np.zeros((n_spans, n_kp), dtype=int)
    contra_all = span_vectors @ rv.contradictions.T  # (S, C)
    for k in range(n_kp):  # K is a handful of key points; the work per k is one vectorized argmax
        cols = np.flatnonzero(owner == k)
        idx = target_sim[:, cols].argmax(axis=1)
        best_target[:, k] = cols[idx]
        kp_sim[:, k] = target_sim[np.arange(n_spans), cols[idx]]
        ccols = np.flatnonzero(rv.contradiction_owner == k)
        if len(ccols):
            cidx = contra_all[:, ccols].argmax(axis=1)
            best_contra[:, k] = ccols[cidx]
            contra_sim[:, k] = contra_all[np.arange(n_spans), ccols[cidx]]
    return Similarities(
        key_points=kp_sim,
        best_target=best_target,
        contradictions=contra_sim,
        best_contradiction=best_contra,
        question=span_vectors @ rv.question,
        misconceptions=span_vectors @ rv.misconceptions.T,
    )
