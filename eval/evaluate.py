"""One data set through the grader and the baselines, mapped to the score scale three ways, then scored.

Ours also has ``default``: the score the grader returns with no settings (the shipped per-key-point
mapping, ``grader.mapping``). Mappings, the same for every method: ``linear`` (ours: coverage x max_score; a baseline: its
similarity clipped to 0..1 x max_score), ``transfer`` (a calibration artefact fitted on another
data set, SAF training by default) and ``cv`` (calibration cross-validated on this data set with
GroupKFold by question). The result is a long table of metrics: one row per method x mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from grader.calibrate import FEATURES, Calibration
from grader.grade import Grader

from .baselines import BASELINES, baseline_scores
from .calibration import apply_calibration, cross_validated, fit_calibration
from .harness import grade_table
from .metrics import agreement, per_question

OURS = "ours"
OUR_FEATURES = list(FEATURES)
METHODS = {OURS: OUR_FEATURES, **{name: [name] for name in BASELINES}}
MAPPINGS = ("default", "linear", "transfer", "cv")  # default: the grader's own score, ours only


@dataclass
class Evaluation:
    name: str
    frame: pd.DataFrame  # rows + features + one column "<method>:<mapping>" per prediction
    metrics: pd.DataFrame  # method, mapping, n, pearson, spearman, rmse, qwk[, macro_f1]
    per_question: pd.DataFrame  # group, method, mapping, metrics
    grade_seconds: float
    notes: list[str] = field(default_factory=list)


def fit_transfer(frame: pd.DataFrame, fitted_on: str) -> dict[str, Calibration]:
    """A calibration per method fitted on every row of ``frame`` (to apply to other data)."""
    return {
        method: fit_calibration(
            frame[~frame["zeroed"]] if method == OURS else frame, feats, f"{fitted_on}-{method}".replace("_", "-"),
            fitted_on,
        )
        for method, feats in METHODS.items()
    }


def grade_with_baselines(frame: pd.DataFrame, grader: Grader) -> tuple[pd.DataFrame, float]:
    graded = grade_table(frame, grader)
    out = pd.concat([graded.frame, baseline_scores(graded.frame, graded.rubrics, grader.encoder)], axis=1)
    return out, graded.seconds


def evaluate(
    name: str, frame: pd.DataFrame, transfer: dict[str, Calibration] | None, seconds: float = 0.0
) -> Evaluation:
    """Predictions of every method x mapping on a graded frame (from ``grade_with_baselines``)."""
    out = frame.copy()
    notes: list[str] = []
    scale = out["max_score"].to_numpy(float)
    out[f"{OURS}:default"] = out["score"]  # what `grader grade` returns with no settings (grader.mapping)
    for method, feats in METHODS.items():
        raw = out["linear"] if method == OURS else np.clip(out[method], 0, 1) * scale
        # The grader zeroes flagged answers (off-topic, gibberish, ...) whatever the mapping; so do we here.
        keep = ~out["zeroed"].to_numpy(bool) if method == OURS else np.ones(len(out), bool)
        out[f"{method}:linear"] = raw
        if transfer is not None:
            out[f"{method}:transfer"] = apply_calibration(transfer[method], out) * keep
        if out["group"].nunique() >= 2:
            out[f"{method}:cv"] = cross_validated(out, feats, fit_mask=keep) * keep
    if transfer is None:
        notes.append("no transferred calibration for this data set")
    columns = [c for c in out.columns if ":" in c and c.split(":")[0] in METHODS]
    metrics = pd.DataFrame(
        [{"method": c.split(":")[0], "mapping": c.split(":")[1], **agreement(out, c, interval=True)} for c in columns]
    )
    pq = pd.concat(
        [per_question(out, c).assign(method=c.split(":")[0], mapping=c.split(":")[1]) for c in columns],
        ignore_index=True,
    )
    return Evaluation(name, out, metrics, pq, seconds, notes)
