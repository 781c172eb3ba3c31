"""Reviews become calibration: fit the score mapping on reviewed results (``grader calibrate --from-reviews``).

The mapping is the one every other calibration uses (``eval.calibration.fit_mapping``: ridge on
standardized features, then isotonic), fitted on the latest human score of every reviewed result.
It is judged before it is written: cross-validated by rubric when the reviews span several rubrics,
by answer within one rubric, and the agreement of the stored machine scores and of the out-of-fold
mapped scores with the human scores is reported on the same held-out reviews.

Only features a stored result carries faithfully are used (``STORED_FEATURES``): the question
similarities and word shares behind ``relative_mean`` and ``word_share`` are not kept with a result,
and a mapping must see at grading time what it was fitted on. Results a zero-score flag decided
(off-topic, gibberish, ...) are left out of the fit, as in ``eval.evaluate.fit_transfer``: the grader
zeroes them whatever the mapping says, and applies every guard after the mapping, so the guards'
effects are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, KFold

from grader.calibrate import Calibration, features_of
from grader.errors import GraderError
from grader.review import Agreement, agreement_of
from grader.score import ZERO_SCORE_FLAGS

from .calibration import FOLDS, fit_mapping

STORED_FEATURES = ["coverage", "similarity_mean", "similarity_min", "similarity_max", "alignment"]


@dataclass
class ReviewCalibration:
    calibration: Calibration
    path: Path
    rows: int
    left_out: int  # reviewed results a zero-score flag decided
    split: str  # how the held-out reviews were chosen
    before: Agreement
    after: Agreement

    def describe(self) -> str:
        def line(name: str, a: Agreement) -> str:
            return f"  {name:<22} Pearson {a.pearson}  QWK {a.qwk}  mean difference {a.mean_difference}  (n={a.count})"

        return "\n".join(
            [
                f"fitted on {self.rows} reviewed results ({self.left_out} zeroed by a flag left out); held out {self.split}:",
                line("before (stored scores)", self.before),
                line("after (this mapping)", self.after),
                f"wrote {self.calibration.name} to {self.path}; apply it with GRADER_CALIBRATION_PATH={self.path}",
            ]
        )


def calibrate_from_reviews(store, out: Path, rubric_id: str | None, min_reviews: int) -> ReviewCalibration:
    """Fit, cross-validate and write a calibration artefact from the store's reviewed results."""
    reviewed = store.results_with_reviews(rubric_id)
    usable = [r for r in reviewed if not set(r.flags) & ZERO_SCORE_FLAGS]
    scope = f"rubric {rubric_id!r}" if rubric_id else "the store"
    if len(usable) < min_reviews:
        raise GraderError(
            f"{scope} has {len(usable)} reviewed result(s) to fit on ({len(reviewed) - len(usable)} zeroed by a flag do not "
            f"count); a calibration needs at least {min_reviews} (GRADER_MIN_REVIEWS_TO_CALIBRATE): review more with "
            "`grader review pick N` or `grader review export`",
            field="reviews",
        )
    x = np.array([[features_of(r)[f] for f in STORED_FEATURES] for r in usable])
    share = np.array([r.review.score / r.max_score for r in usable])
    top = np.array([r.max_score for r in usable])
    rubrics = np.array([r.rubric_id for r in usable])
    folds, split = _folds(rubrics)
    predicted = np.zeros(len(usable))
    for fit_rows, test_rows in folds.split(x, groups=rubrics if isinstance(folds, GroupKFold) else None):
        fold = fit_mapping(x[fit_rows], share[fit_rows], STORED_FEATURES, cal_id="cv-fold", fitted_on="cv")
        predicted[test_rows] = fold.share(x[test_rows]) * top[test_rows]
    human = share * top
    before = agreement_of([r.score for r in usable], human, top, rubric_id)
    after = agreement_of(predicted, human, top, rubric_id)
    cal_id = f"reviews-{rubric_id or 'all'}"
    calibration = fit_mapping(x, share, STORED_FEATURES, cal_id=cal_id, fitted_on=f"reviews of {scope}")
    calibration = calibration.model_copy(
        update={
            "version": _next_version(out, cal_id),
            "notes": {
                **calibration.notes,
                "rubrics": sorted(set(rubrics.tolist())),
                "held_out": split,
                "before": before.model_dump(),
                "after": after.model_dump(),
            },
        }
    )
    calibration.save(out)
    return ReviewCalibration(calibration, out, len(usable), len(reviewed) - len(usable), split, before, after)


def _folds(rubrics: np.ndarray):
    """By rubric when there are several (a rubric is never fitted and tested), else by answer."""
    distinct = len(set(rubrics.tolist()))
    if distinct >= 2:
        return GroupKFold(n_splits=min(FOLDS, distinct)), f"by rubric ({min(FOLDS, distinct)} folds)"
    return KFold(n_splits=FOLDS, shuffle=True, random_state=0), f"by answer within the rubric ({FOLDS} folds)"


def _next_version(out: Path, cal_id: str) -> int:
    """One more than the artefact already at ``out`` when it is the same mapping's, else 1."""
    try:
        old = Calibration.model_validate_json(Path(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1
    return old.version + 1 if old.id == cal_id else 1

