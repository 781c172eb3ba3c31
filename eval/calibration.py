"""Fitting calibration mappings on human grades, and evaluating them honestly.

One procedure for every method, ours and the baselines alike: standardize the features, fit a
ridge regression to the human share of max_score, then an isotonic regression of the share on the
ridge score (monotone, bounded to 0..1). ``cross_validated`` fits it with GroupKFold by question,
so no question is in both the fit and the test rows; ``fit_calibration`` fits it on a whole data
set to ship as an artefact for other data.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold

from grader.calibrate import Calibration

RIDGE_ALPHA = 1.0  # features are standardized and few; this only steadies collinear similarity features
MAX_KNOTS = 64  # isotonic steps kept in the artefact; more only fits noise of the fitting set
FOLDS = 5


def _share(frame: pd.DataFrame) -> np.ndarray:
    return (frame["human"] / frame["max_score"]).to_numpy(float)


def fit_mapping(x: np.ndarray, y: np.ndarray, features: list[str], *, cal_id: str, fitted_on: str) -> Calibration:
    """Ridge on standardized features, then isotonic on the ridge score; returned as an artefact."""
    x = np.asarray(x, float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    ridge = Ridge(alpha=RIDGE_ALPHA).fit((x - mean) / scale, y)
    z = ridge.predict((x - mean) / scale)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z, y)
    kx, ky = iso.X_thresholds_, iso.y_thresholds_
    if len(kx) > MAX_KNOTS:  # keep quantile knots of the fitted step function
        pick = np.unique(np.linspace(0, len(kx) - 1, MAX_KNOTS).round().astype(int))
        kx, ky = kx[pick], ky[pick]
    return Calibration(
        id=cal_id,
        fitted_on=fitted_on,
        method=f"ridge(alpha={RIDGE_ALPHA})+isotonic",
        features=list(features),
        mean=mean.round(6).tolist(),
        scale=scale.round(6).tolist(),
        coef=ridge.coef_.round(6).tolist(),
        intercept=round(float(ridge.intercept_), 6),
        knots_x=np.round(kx, 6).tolist(),
        knots_y=np.round(ky, 6).tolist(),
        notes={"rows": len(y), "fitted": date.today().isoformat()},
    )


def fit_calibration(frame: pd.DataFrame, features: list[str], cal_id: str, fitted_on: str) -> Calibration:
    """Fit on every row of ``frame`` (graded, with feature columns and human scores)."""
    return fit_mapping(frame[features].to_numpy(float), _share(frame), features, cal_id=cal_id, fitted_on=fitted_on)


def apply_calibration(calibration: Calibration, frame: pd.DataFrame) -> np.ndarray:
    """Predicted scores on each row's scale."""
    return calibration.share(frame[calibration.features].to_numpy(float)) * frame["max_score"].to_numpy(float)


def cross_validated(
    frame: pd.DataFrame, features: list[str], folds: int = FOLDS, fit_mask: np.ndarray | None = None
) -> np.ndarray:
    """Out-of-fold predicted scores: GroupKFold by question, so a question is never fitted and tested.

    ``fit_mask`` limits the rows a fold is fitted on (ours leaves out answers that a zero-score flag
    decides regardless of the mapping); every row is still predicted.
    """
    pred = np.zeros(len(frame))
    groups = frame["group"].to_numpy()
    usable = np.ones(len(frame), bool) if fit_mask is None else np.asarray(fit_mask, bool)
    for fit_rows, test_rows in GroupKFold(n_splits=min(folds, len(set(groups)))).split(frame, groups=groups):
        cal = fit_calibration(frame.iloc[fit_rows[usable[fit_rows]]], features, "cv-fold", "cv")
        pred[test_rows] = apply_calibration(cal, frame.iloc[test_rows])
    return pred
