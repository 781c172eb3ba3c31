"""The one grading path. The CLI, the API, batch jobs and the eval harness all call ``Grader.grade_many``.

Many answers are graded together, in one ``read`` call of the encoder (one unpadded forward pass per
text). By default (``GRADER_SPAN_VECTORS=pooled``) each answer's clauses are read in one packed pass, each
clause attending only to itself, and windows and the whole answer are pooled from its clauses; with ``separate``
every clause, window and whole answer is read on its own (eval/SPANS.md compares the two). The texts of
rubrics not yet cached are read in the same call; the rest is matrix products per answer."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from . import __version__
from .calibrate import load_calibration
from .encoder import MEAN_POOLING, EmbeddingCache, Encoder, Reading, VectorStore, configured_encoder, unit_rows
from .errors import AnswerError, AnswerTooLarge, GraderError, RubricError
from .guards import (
    adds_to_question,
    instruction_parts,
    is_keyword_list,
    is_non_answer,
    polarity_flipped,
    states_claim,
)
from .language import language_flag
from .mapping import load_mapping
from .match import (
    RubricVectors,
    Span,
    answer_spans,
    rubric_texts,
    similarities,
    span_new_words,
    span_text,
    token_texts,
    word_share,
)
from .result import Evidence, Fingerprint, GradeResult, MisconceptionHit
from .review_calibration import ReviewCalibration, ReviewCalibrations, load_review_calibration
from .rubric import Rubric
from .score import (
    REVIEW_FLAGS,
    ZERO_SCORE_FLAGS,
    AnswerView,
    Wording,
    confidence_of,
    coverage_of,
    judge_key_points,
    mapped_points,
    points_for,
)
from .segment import Clause, distinct_clauses, segment_answer
from .settings import Settings, Thresholds, get_settings

REASONS = {
    "no_answer": "the answer says it gives no answer",
    "off_topic": "the answer is not about the question or any key point",
    "short_answer": "a few words far from every key point: too short to judge by meaning, check it by hand",
    "grader_instruction": "the answer addresses the grader instead of the question; such text earns nothing",
    "gibberish": "the answer is not readable text",
    "other_language": "the answer is not in English, the language of the rubric",
    "question_restated": "some sentences only restate the question and earn nothing",
    "question_restated_only": "the answer only restates the question",
    "keyword_list": "key points named as bare terms, without saying how they relate, earn at most partial credit",
    "too_long": "the answer is unusually long; check that its evidence is not scattered padding",
    "contradiction": "the answer denies at least one key point",
    "misconception": "the answer states a known misconception",
    "no_key_point": "the answer makes none of the key points",
}


def pooled_span_vectors(clauses: list[Reading], spans: list[Span]) -> np.ndarray:
    """(S, d) unit vectors of an answer's spans from its clauses, each read on its own.

    A clause's vector is its own reading, free of its neighbours, so a denial or a filler sentence is judged
    by what it says (pooled from the whole answer, a clause took its neighbours' topic: eval/SPANS.md). A
    window or the whole answer is the mean of its clauses' word pieces, weighting each clause's vector by its
    number of pieces.
    """
    vectors = np.stack([r.sentence for r in clauses])
    pieces = np.array([max(1, len(r.offsets)) for r in clauses], dtype=np.float64)
    member = np.zeros((len(spans), len(clauses)))
    for j, s in enumerate(spans):
        member[j, s.first : s.last + 1] = pieces[s.first : s.last + 1]
    return unit_rows(member @ vectors).astype(np.float32)


def scores_of(results: Sequence[GradeResult | GraderError]) -> np.ndarray:
    """Scores of graded results; an answer that cannot be graded earns 0, as it would in batch output."""
    return np.array([r.score if isinstance(r, GradeResult) else 0.0 for r in results], dtype=float)


def clean_answer(answer: str | bytes, max_chars: int) -> str:
    """Decode and validate an answer at the boundary; every rejection says what to fix."""
    if isinstance(answer, bytes):
        try:
            answer = answer.decode("utf-8")
        except UnicodeDecodeError as err:
            raise AnswerError(f"answer is not valid UTF-8 (bad byte at offset {err.start}); send UTF-8 text") from None
    if not isinstance(answer, str):
        raise AnswerError(f"answer must be text, got {type(answer).__name__}", field="answer")
    # Control characters (except tab / newline) carry no meaning and can hide text from a reader.
    if not answer.isprintable():  # most answers are; the character-by-character filter is for those that are not
        answer = "".join(ch for ch in answer if ch in "\t\n\r" or ch.isprintable() or ch == "\u00a0")
    if len(answer) > max_chars:
        raise AnswerTooLarge(
            f"answer has {len(answer)} characters; the limit is {max_chars} (setting GRADER_MAX_ANSWER_CHARS)",
            field="answer",
        )
    if not answer.strip():
        raise AnswerError("answer is empty; there is nothing to grade", field="answer")
    return answer


def read_wording(text: str, clauses: list[Clause], spans: list[Span], rv: RubricVectors) -> Wording:
    """What judging reads from the answer's words alone (no vectors), so it can be done while the model reads."""
    return Wording(
        text=text,
        flags=["no_answer"] if is_non_answer(text) else [flag] if (flag := language_flag(text)) else [],
        instruction=np.array(instruction_parts([c.text for c in clauses]), dtype=bool),
        keyword=np.array([is_keyword_list(c.text) for c in clauses], dtype=bool) | is_keyword_list(text),
        span_words=span_new_words([span_text(clauses, s) for s in spans], rv),
    )


class Grader:
    """Holds the model, the key-point embedding cache and the settings; grades answers."""

    def __init__(
        self, settings: Settings | None = None, encoder: Encoder | None = None, vectors: VectorStore | None = None
    ) -> None:
        self.settings = settings or get_settings()
        s = self.settings
        self.encoder = encoder or configured_encoder(s)
        self.cache = EmbeddingCache(self.settings.embedding_cache_size)
        # A second, shared level for key-point embeddings (the store): workers and restarts reuse them.
        self.vectors = vectors
        # The default score: per-key-point probabilities from accepted evidence, mapped monotonically
        # (grader.mapping). An answer-level calibration artefact (calibration_path) replaces it when set;
        # score_mapping=linear gives weighted coverage x max_score.
        self.calibration_model = load_calibration(s.calibration_path) if s.calibration_path else None
        self.mapping = None if self.calibration_model or s.score_mapping == "linear" else load_mapping(s.mapping_path)
        chosen = self.calibration_model or self.mapping
        self.calibration = chosen.name if chosen else "linear"
        self.reviews = self._review_calibrations([load_review_calibration(p) for p in s.review_calibrations])
        # Spans are pooled the way the model pools a sentence; a model that pools otherwise reads each span.
        pools_by_mean = getattr(self.encoder, "pooling", "mean") in MEAN_POOLING
        self.span_vectors = s.span_vectors if pools_by_mean else "separate"
        # Judging is many small matrix products; right after a forward pass the model's threads still hold the
        # cores, and a multi-threaded BLAS waiting for them took 20+ ms per answer on 2 cores (about 1 ms alone).
        self._blas = ThreadpoolController()

    def _review_calibrations(self, artefacts: list[ReviewCalibration]) -> ReviewCalibrations:
        if artefacts and self.mapping is None:
            raise GraderError(
                "review calibrations refit the evidence mapping: unset GRADER_CALIBRATION_PATH and keep "
                "GRADER_SCORE_MAPPING a mapping (not 'linear'), or unset GRADER_REVIEW_CALIBRATIONS",
                field="review_calibrations",
            )
        return ReviewCalibrations(artefacts, self.encoder.weights_hash)

    def with_review_calibrations(self, artefacts: list[ReviewCalibration]) -> Grader:
        """This grader (same model, caches and settings) under other review calibrations: for impact and CV."""
        variant = copy.copy(self)
        variant.reviews = self._review_calibrations(artefacts)
        return variant

    def thresholds_for(self, rubric: Rubric) -> Thresholds:
        if not rubric.thresholds:
            return self.settings.thresholds
        # Validated again as a whole: a per-rubric partial threshold must stay below the covered one in force.
        try:
            return Thresholds.model_validate({**self.settings.thresholds.model_dump(), **rubric.thresholds})
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            raise RubricError(f"rubric {rubric.id}: thresholds: {err.errors()[0]['msg']}", field="thresholds") from None

    def fingerprint(self, rubric: Rubric) -> Fingerprint:
        return Fingerprint(
            model=self.encoder.name,
            model_hash=self.encoder.weights_hash,
            rubric_id=rubric.id,
            rubric_version=rubric.version,
            rubric_hash=rubric.content_hash,
            thresholds=self.thresholds_for(rubric).model_dump(),
            calibration=review.name if (review := self.reviews.for_rubric(rubric.id)) else self.calibration,
            grader_version=__version__,
            span_vectors=self.span_vectors,
        )

    def grade(self, rubric: Rubric, answer: str | bytes) -> GradeResult:
        """Grade one answer; raises a ``GraderError`` for input that cannot be graded."""
        (result,) = self.grade_many([(rubric, answer)])
        if isinstance(result, GraderError):
            raise result
        return result

    def grade_many(self, items: Sequence[tuple[Rubric, str | bytes]]) -> list[GradeResult | GraderError]:
        """Grade many (rubric, answer) pairs with one encode call; a bad answer becomes its error, in place."""
        return list(self.grade_iter(items))

    def grade_iter(self, items: Sequence[tuple[Rubric, str | bytes]]) -> Iterator[GradeResult | GraderError]:
        """``grade_many``, each outcome yielded in order as soon as it is judged (the encoder reads on meanwhile).

        The inference worker hands each result to its caller this way, instead of after the whole micro-batch.
        """
        prepared: list[tuple[Rubric, str, list] | GraderError] = []
        for rubric, answer in items:
            try:
                text = clean_answer(answer, self.settings.max_answer_chars)
                clauses = distinct_clauses(segment_answer(text))
                if not clauses:
                    raise AnswerError("answer has no words to grade", field="answer")
                if len(clauses) > self.settings.max_clauses:
                    raise AnswerTooLarge(
                        f"answer has {len(clauses)} clauses; the limit is {self.settings.max_clauses} "
                        "(setting GRADER_MAX_CLAUSES)",
                        field="answer",
                    )
                prepared.append((rubric, text, clauses))
            except GraderError as err:
                prepared.append(err)

        # One model call: the clauses of each answer (pooled) or every distinct span text (separate), plus the
        # texts of rubrics not yet cached; a rubric whose embeddings the shared store holds needs only the word
        # tokens of its question and key points.
        todo = [p for p in prepared if not isinstance(p, GraderError)]
        spans_of = [answer_spans(clauses) for _, _, clauses in todo]
        pooled = self.span_vectors == "pooled"
        answer_texts = [] if pooled else [
            span_text(clauses, s) for (_, _, clauses), spans in zip(todo, spans_of) for s in spans
        ]
        # A review calibration compares the whole answer with the rubric's reviewed answers.
        answer_texts += [text for r, text, _ in todo if self._reviewed_answers(r)]
        rubrics = {r.content_hash: r for r, _, _ in todo}
        # Looked up once: each answer uses the vectors found or built here, whatever the cache evicts meanwhile.
        rvs = {h: self.cache.get(self._cache_key(h)) for h in rubrics}
        fresh = [r for h, r in rubrics.items() if rvs[h] is None]
        stored = {r.content_hash: self._stored(r) for r in fresh}
        to_embed = [
            t for r in fresh for t in (rubric_texts(r) if stored[r.content_hash] is None else token_texts(r))
        ]
        unique = list(dict.fromkeys(answer_texts + to_embed))
        clause_readings: Iterator[list[Reading]] = iter([[] for _ in todo])
        if pooled:  # each answer's clauses in one pass, each clause attending only to itself
            # Read group by group: the answers are judged as they come, while the encoder reads the next ones.
            groups = iter(self.encoder.read_apart([[t] for t in unique] + [[c.text for c in cl] for _, _, cl in todo]))
            readings = {t: r for t, (r,) in zip(unique, groups)}
            clause_readings = groups
        else:
            readings = dict(zip(unique, self.encoder.read(unique)))
        for r in fresh:
            embeddings = stored[r.content_hash]
            if embeddings is None:
                embeddings = np.stack([readings[t].sentence for t in rubric_texts(r)])
                if self.vectors is not None:
                    self.vectors.save_embeddings(self._cache_key(r.content_hash), embeddings)
            word_tokens = [readings[t].word_tokens() for t in token_texts(r)]
            rvs[r.content_hash] = RubricVectors.from_embeddings(r, embeddings, word_tokens)
            self.cache.put(self._cache_key(r.content_hash), rvs[r.content_hash])

        it = iter(zip(todo, spans_of))
        with self._blas.limit(limits=1, user_api="blas"):
            for p in prepared:
                if isinstance(p, GraderError):
                    yield p
                    continue
                (rubric, text, clauses), spans = next(it)
                rv = rvs[rubric.content_hash]
                wording = read_wording(text, clauses, spans, rv)  # while the encoder may still be reading the answer
                own = next(clause_readings)
                if pooled:
                    span_vecs, clause_tokens = pooled_span_vectors(own, spans), [r.word_tokens() for r in own]
                else:
                    span_vecs = np.stack([readings[span_text(clauses, s)].sentence for s in spans])
                    clause_tokens = [readings[c.text].word_tokens() for c in clauses]
                vector = readings[text].sentence if self._reviewed_answers(rubric) else None
                yield self._judge(rubric, rv, wording, clauses, spans, span_vecs, clause_tokens, vector)

    def _reviewed_answers(self, rubric: Rubric) -> bool:
        review = self.reviews.for_rubric(rubric.id)
        return review is not None and rubric.id in review.neighbours

    def _cache_key(self, rubric_hash: str) -> str:
        return f"{self.encoder.weights_hash}:{rubric_hash}"

    def _stored(self, rubric: Rubric) -> np.ndarray | None:
        """The rubric's key-point embeddings from the shared store, when it holds them for this model."""
        embeddings = self.vectors.load_embeddings(self._cache_key(rubric.content_hash)) if self.vectors else None
        if embeddings is None or embeddings.shape != (len(rubric_texts(rubric)), self.encoder.dim):
            return None
        return embeddings

    def _judge(self, rubric, rv, wording, clauses, spans, span_vecs, clause_tokens, answer_vector=None) -> GradeResult:
        t = self.thresholds_for(rubric)
        sims = similarities(span_vecs, rv)
        n = len(clauses)
        text, flags, instruction = wording.text, list(wording.flags), wording.instruction
        nearest_point = sims.key_points[:n].max(axis=1)
        # A clause nearer the question than any key point restates it (questions are never split into clauses).
        restated = (sims.question[:n] >= t.question_restated_threshold) & (sims.question[:n] >= nearest_point)
        key_texts = [kp.text for kp in rubric.key_points]
        for c in np.flatnonzero(restated):  # ... unless it adds words of the answer key to the question
            restated[c] = not adds_to_question(clauses[c].text, rubric.question, key_texts)
        if instruction.any():
            flags.append("grader_instruction")
        if restated.any():
            flags.append("question_restated_only" if (restated | instruction).all() else "question_restated")
        excluded = instruction | restated
        view = AnswerView(wording, clauses, spans, excluded, nearest_point, clause_tokens, flags)
        judgement = judge_key_points(rubric, rv, sims, view, t)
        verdicts = judgement.verdicts

        eligible = np.array([not excluded[list(s.clauses)].any() for s in spans], dtype=bool)
        best_any = max(
            float(sims.key_points[eligible].max(initial=-1.0)), float(sims.question[eligible].max(initial=-1.0))
        )
        if best_any < t.off_topic_threshold and not set(flags) & ZERO_SCORE_FLAGS:
            # A sentence vector of "logn" or "its resizeable" is far from any reference; humans gave such Mohler
            # answers 3.2 of 5 on average, so a short answer is judged on its key points and sent for review.
            flags.append("off_topic" if len(text.split()) >= t.off_topic_min_words else "short_answer")
        if len(text.split()) > self.settings.too_long_words:
            flags.append("too_long")
        if any(v.status == "contradicted" for v in verdicts):
            flags.append("contradiction")

        hits = self._misconceptions(rubric, sims, view, t)
        if hits:
            flags.append("misconception")
        coverage = coverage_of(rubric, verdicts)
        if self.mapping is not None:
            review = self.reviews.for_rubric(rubric.id)
            mapping, pull = (review.mapping, review.pull(rubric.id, answer_vector)) if review else (self.mapping, None)
            points, probability = mapped_points(rubric, judgement, mapping, t, pull)
            verdicts = [v.model_copy(update={"probability": round(float(p), 4)}) for v, p in zip(verdicts, probability)]
        else:
            shares = word_share(text, rv) if self.calibration_model is not None else None
            points = points_for(rubric, verdicts, coverage, self.calibration_model, rv.question_similarity, shares)
        points -= sum(h.penalty for h in hits)
        if set(flags) & ZERO_SCORE_FLAGS:
            coverage, points = 0.0, 0.0
        elif all(v.status in ("missing", "contradicted") for v in verdicts) and "off_topic" not in flags:
            flags.append("no_key_point")  # a zero always comes with its reason
        confidence = confidence_of(verdicts, flags, t)
        return GradeResult(
            rubric_id=rubric.id,
            score=round(min(max(points, 0.0), rubric.max_score), 3),
            max_score=rubric.max_score,
            coverage=round(coverage, 4),
            key_points=verdicts,
            missing=[v.id for v in verdicts if v.status == "missing"],
            contradicted=[v.id for v in verdicts if v.status == "contradicted"],
            misconceptions=hits,
            flags=flags,
            reasons=[REASONS[f] for f in flags],
            confidence=confidence,
            needs_review=confidence < self.settings.review_confidence or bool(set(flags) & REVIEW_FLAGS),
            fingerprint=self.fingerprint(rubric),
        )

    @staticmethod
    def _misconceptions(rubric, sims, view, t) -> list[MisconceptionHit]:
        hits = []
        n = len(view.clauses)
        context = [kp.text for kp in rubric.key_points]
        for m, misconception in enumerate(rubric.misconceptions):
            # Like a contradiction, a misconception is stated only when it is nearer than any key point.
            said = sims.misconceptions[:n, m]
            col = np.where(view.excluded | (said < view.nearest_point + t.contradiction_margin), -1.0, said)
            c = int(col.argmax())
            clause = view.clauses[c]
            if (
                col[c] >= t.misconception_threshold
                and not polarity_flipped(misconception.text, clause.text)
                and states_claim(misconception.text, context, clause.text)
            ):
                hits.append(
                    MisconceptionHit(
                        text=misconception.text,
                        penalty=misconception.penalty,
                        evidence=Evidence(
                            text=clause.text, start=clause.start, end=clause.end, similarity=round(float(col[c]), 4)
                        ),
                    )
                )
        return hits
