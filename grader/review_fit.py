"""Fit a review calibration on the store's reviewed results (``grader calibrate --from-reviews``).

The isotonic curve is refit on (expected coverage, human share): expected coverage comes from the stored
verdicts' probabilities and weights (``grader.score.expected_coverage``, the number the grader's curve reads),
so the per-key-point logistic is kept as shipped. Every reviewed answer (with its rubric in the store) is
kept as a neighbour of its rubric. The artefact is judged before it is written: cross-validated by rubric
when the reviews span several rubrics, by answer within one, each held-out answer regraded once through
``Grader.grade_many`` under the artefact fitted without its fold, so "after" is what the grader would give.

Results a zero-score flag decided (off-topic, gibberish, ...) are not fitted on or scored: the grader zeroes
them whatever the curve says. They still serve as neighbours (a human score is a reference either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import GroupKFold, KFold

from .errors import GraderError, UnknownRubric
from .grade import Grader, scores_of
from .mapping import ScoreMapping
from .review import Agreement, ReviewedResult, agreement_of
from .review_calibration import ReviewCalibration, ReviewedAnswers, encode_vectors
from .rubric import Rubric
from .score import ZERO_SCORE_FLAGS, expected_coverage

FOLDS = 5


@dataclass
class ReviewSet:
    """Reviewed results whose rubric version the store holds, with what fitting and regrading need."""

    results: list[ReviewedResult]
    rubrics: list[Rubric]
    usable: np.ndarray  # (n,) bool: fitted on and scored (no zero flag, weighted rubric, probabilities stored)
    expected: np.ndarray  # (n,) expected coverage of the stored verdicts
    human: np.ndarray  # (n,) human share of max_score
    vectors: np.ndarray  # (n, d) answer embeddings
    left_out: int  # reviewed results whose rubric version the store does not hold


def reviewed_set(store, grader: Grader, rubric_id: str | None) -> ReviewSet:
    """The store's reviewed results (latest review each), their rubrics and answer embeddings (one encode call)."""
    rubrics: dict[tuple[str, int], Rubric | None] = {}
    kept: list[tuple[ReviewedResult, Rubric]] = []
    reviewed = store.results_with_reviews(rubric_id)
    for r in reviewed:
        key = (r.rubric_id, r.rubric_version)
        if key not in rubrics:
            try:
                rubrics[key] = store.get_rubric(*key)
            except UnknownRubric:
                rubrics[key] = None
        if rubrics[key] is not None:
            kept.append((r, rubrics[key]))
    results, used = [r for r, _ in kept], [rb for _, rb in kept]
    usable = np.array(
        [
            not set(r.flags) & ZERO_SCORE_FLAGS
            and rb.scoring.mode == "weighted"
            and all(v.probability is not None for v in r.key_points)
            for r, rb in kept
        ],
        dtype=bool,
    )
    expected = np.array(
        [
            expected_coverage([v.weight for v in r.key_points], [v.probability or 0.0 for v in r.key_points])
            for r in results
        ]
    )
    human = np.array([r.review.score / r.max_score for r in results])
    vectors = np.asarray(grader.encoder.encode([r.answer for r in results]), dtype=np.float32)
    return ReviewSet(results, used, usable, expected, human, vectors.reshape(len(results), -1), len(reviewed) - len(kept))


def refit_curve(base: ScoreMapping, expected: np.ndarray, human: np.ndarray, cal_id: str, fitted_on: str) -> ScoreMapping:
    """``base`` with its isotonic curve (expected coverage -> share, increasing, 0..1) refit on ``(expected, human)``."""
    iso = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(expected, human)
    x, y = iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist()
    if len(x) < 2:  # one distinct coverage: a flat curve
        x, y = [0.0, 1.0], [y[0], y[0]]
    return base.model_copy(
        update={
            "id": cal_id, "fitted_on": fitted_on, "knots_x": x, "knots_y": y,
            "method": f"{base.name} logistic kept; isotonic refit on {len(expected)} reviewed results",
            "notes": {},
        }
    )


def build_calibration(
    grader: Grader, reviews: ReviewSet, fit_rows: np.ndarray, neighbour_rows: np.ndarray, cal_id: str,
    rubric_id: str | None, fitted_on: str, version: int = 1,
) -> ReviewCalibration:
    """The artefact fitted on ``fit_rows`` (curve) and ``neighbour_rows`` (reviewed answers) of ``reviews``."""
    base = grader.mapping
    neighbours: dict[str, ReviewedAnswers] = {}
    for rid in sorted({reviews.results[i].rubric_id for i in neighbour_rows}):
        rows = [int(i) for i in neighbour_rows if reviews.results[i].rubric_id == rid]
        neighbours[rid] = ReviewedAnswers(
            shares=[round(float(reviews.human[i]), 6) for i in rows], vectors=encode_vectors(reviews.vectors[rows])
        )
    return ReviewCalibration(
        id=cal_id, version=version, rubric_id=rubric_id, fitted_on=fitted_on, base_mapping=base.name,
        model_hash=grader.encoder.weights_hash, dim=int(grader.encoder.dim),
        mapping=refit_curve(base, reviews.expected[fit_rows], reviews.human[fit_rows], cal_id, fitted_on),
        neighbours=neighbours,
    )


@dataclass
class ReviewFit:
    calibration: ReviewCalibration
    path: Path
    rows: int
    left_out: int  # reviewed results zeroed by a flag, of a count-mode rubric, or without a stored rubric
    split: str
    before: Agreement
    after: Agreement

    def describe(self) -> str:
        def line(name: str, a: Agreement) -> str:
            return f"  {name:<22} Pearson {a.pearson}  QWK {a.qwk}  mean difference {a.mean_difference}  (n={a.count})"

        return "\n".join(
            [
                f"fitted on {self.rows} reviewed results ({self.left_out} left out: zeroed by a flag, count mode, or "
                f"rubric not stored); held out {self.split}:",
                line("before (stored scores)", self.before),
                line("after (this artefact)", self.after),
                f"wrote {self.calibration.name} to {self.path}; apply it with GRADER_REVIEW_CALIBRATIONS={self.path}",
            ]
        )


def fit_from_reviews(store, grader: Grader, out: Path, rubric_id: str | None, min_reviews: int) -> ReviewFit:
    """Fit, cross-validate and write a review calibration from the store's reviewed results."""
    if grader.mapping is None:
        raise GraderError("review calibrations refit the evidence mapping; unset GRADER_CALIBRATION_PATH and "
                          "GRADER_SCORE_MAPPING=linear", field="score_mapping")
    reviews = reviewed_set(store, grader, rubric_id)
    usable = np.flatnonzero(reviews.usable)
    scope = f"rubric {rubric_id!r}" if rubric_id else "the store"
    if len(usable) < min_reviews:
        raise GraderError(
            f"{scope} has {len(usable)} reviewed result(s) to fit on (zeroed by a flag, count-mode or without a stored "
            f"rubric do not count); a review calibration needs at least {min_reviews} (GRADER_MIN_REVIEWS_TO_CALIBRATE): "
            "review more with `grader review pick N` or `grader review export`",
            field="reviews",
        )
    every = np.arange(len(reviews.results))
    groups = np.array([reviews.results[i].rubric_id for i in usable])
    folds, split = _folds(groups)
    predicted = np.zeros(len(usable))
    for train, test in folds.split(usable, groups=groups if isinstance(folds, GroupKFold) else None):
        held = usable[test]
        unseen = set(groups[test].tolist()) if isinstance(folds, GroupKFold) else set()  # held-out rubrics
        neighbours = [i for i in np.setdiff1d(every, held) if reviews.results[i].rubric_id not in unseen]
        fold = build_calibration(grader, reviews, usable[train], np.array(neighbours, int), "cv-fold", rubric_id, "cv")
        variant = grader.with_review_calibrations([fold])
        predicted[test] = scores_of(variant.grade_many([(reviews.rubrics[i], reviews.results[i].answer) for i in held]))
    top = np.array([reviews.results[i].max_score for i in usable])
    human = reviews.human[usable] * top
    before = agreement_of([reviews.results[i].score for i in usable], human, top, rubric_id)
    after = agreement_of(predicted, human, top, rubric_id)
    cal_id = f"reviews-{rubric_id or 'all'}"
    calibration = build_calibration(
        grader, reviews, usable, every, cal_id, rubric_id, f"reviews of {scope}", _next_version(out, cal_id)
    )
    calibration = calibration.model_copy(
        update={
            "notes": {
                "rows": len(usable), "neighbours": len(every), "rubrics": sorted(set(groups.tolist())),
                "held_out": split, "before": before.model_dump(), "after": after.model_dump(),
            }
        }
    )
    calibration.save(out)
    return ReviewFit(calibration, out, len(usable), reviews.left_out + len(every) - len(usable), split, before, after)


def _folds(groups: np.ndarray):
    """By rubric when there are several (a rubric is never fitted and tested), else by answer."""
    distinct = len(set(groups.tolist()))
    if distinct >= 2:
        return GroupKFold(n_splits=min(FOLDS, distinct)), f"by rubric ({min(FOLDS, distinct)} folds)"
    return KFold(n_splits=FOLDS, shuffle=True, random_state=0), f"by answer within the rubric ({FOLDS} folds)"


def _next_version(out: Path, cal_id: str) -> int:
    """One more than the artefact already at ``out`` when it is the same calibration's, else 1."""
    try:
        old = ReviewCalibration.model_validate_json(Path(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1
    return old.version + 1 if old.id == cal_id else 1
