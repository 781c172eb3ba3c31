"""Agreement between predicted and human scores: correlation, error, kappa, and label F1.

Every function takes plain arrays on the score scale. Constant inputs give NaN correlations
(undefined), never an exception, so a per-question table survives a question where everyone
got full marks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import cohen_kappa_score, f1_score

LABELS = ("Incorrect", "Partially correct", "Correct")
# Share of max_score that separates the SAF labels: halfway between the mean human share of the
# classes in SAF training (Incorrect 0.00, Partially correct 0.63, Correct 1.00).
LABEL_CUTS = (0.32, 0.82)


def _constant(x: np.ndarray) -> bool:
    return len(x) < 2 or np.ptp(x) == 0


def pearson(human, pred) -> float:
    h, p = np.asarray(human, float), np.asarray(pred, float)
    return float("nan") if _constant(h) or _constant(p) else float(stats.pearsonr(h, p)[0])


def spearman(human, pred) -> float:
    h, p = np.asarray(human, float), np.asarray(pred, float)
    return float("nan") if _constant(h) or _constant(p) else float(stats.spearmanr(h, p)[0])


def rmse(human, pred) -> float:
    h, p = np.asarray(human, float), np.asarray(pred, float)
    return float(np.sqrt(np.mean((h - p) ** 2)))


def qwk_levels(max_score: float) -> int:
    """Points of the scale kappa is computed on: whole points (0..max) or, for a 0..1 scale, quarters."""
    return int(round(max_score)) if max_score >= 2 else 4


def qwk(human, pred, max_score: float) -> float:
    """Quadratic weighted kappa after rounding both to the human scale's points (``qwk_levels``)."""
    levels = qwk_levels(max_score)
    h = np.clip(np.floor(np.asarray(human, float) / max_score * levels + 0.5), 0, levels).astype(int)
    p = np.clip(np.floor(np.asarray(pred, float) / max_score * levels + 0.5), 0, levels).astype(int)
    if len(set(h) | set(p)) < 2:
        return float("nan")
    return float(cohen_kappa_score(h, p, weights="quadratic", labels=list(range(levels + 1))))


def labels_from_share(share) -> np.ndarray:
    low, high = LABEL_CUTS
    s = np.asarray(share, float)
    return np.where(s >= high, LABELS[2], np.where(s < low, LABELS[0], LABELS[1]))


def macro_f1(labels, share) -> float:
    return float(f1_score(np.asarray(labels), labels_from_share(share), labels=list(LABELS), average="macro", zero_division=0))


BOOTSTRAP_ROUNDS = 1000


def _question_draws(frame: pd.DataFrame, rounds: int, seed: int):
    """Row indices of ``rounds`` resamples of whole questions (drawn with replacement, answers kept together).

    Answers to one question are not independent (one reference, one grader's habits), so the bootstrap
    draws questions, not answers.
    """
    rows = [g.index.to_numpy() for _, g in frame.reset_index(drop=True).groupby("group", sort=False)]
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        yield np.concatenate([rows[i] for i in rng.integers(0, len(rows), len(rows))])


def pearson_interval(frame: pd.DataFrame, pred: str, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> str:
    """95% interval of Pearson when whole questions are resampled: how far a difference is from noise."""
    human, predicted = frame["human"].to_numpy(float), frame[pred].to_numpy(float)
    draws = [pearson(human[take], predicted[take]) for take in _question_draws(frame, rounds, seed)]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return f"{low:.2f}-{high:.2f}"


def paired_difference_interval(
    frame: pd.DataFrame, a: str, b: str, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> str:
    """Pearson of column ``a`` minus that of ``b``, with a 95% interval from the same resampled questions for both."""
    human = frame["human"].to_numpy(float)
    pa, pb = frame[a].to_numpy(float), frame[b].to_numpy(float)
    draws = [pearson(human[t], pa[t]) - pearson(human[t], pb[t]) for t in _question_draws(frame, rounds, seed)]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return f"{pearson(human, pa) - pearson(human, pb):+.3f} ({low:+.3f} to {high:+.3f})"


def agreement(frame: pd.DataFrame, pred: str, interval: bool = False) -> dict[str, float]:
    """All metrics of column ``pred`` against ``human`` over the rows of ``frame`` (one scale).

    ``interval`` adds the question-bootstrap 95% interval of Pearson (``pearson_interval``).
    """
    max_score = float(frame["max_score"].max())
    out = {
        "n": len(frame),
        "pearson": pearson(frame["human"], frame[pred]),
        **({"pearson 95% interval": pearson_interval(frame, pred)} if interval else {}),
        "spearman": spearman(frame["human"], frame[pred]),
        "rmse": rmse(frame["human"], frame[pred]),
        "qwk": qwk(frame["human"], frame[pred], max_score),
    }
    if "label" in frame and frame["label"].notna().all():
        out["macro_f1"] = macro_f1(frame["label"], frame[pred] / frame["max_score"])
    return out


def per_question(frame: pd.DataFrame, pred: str) -> pd.DataFrame:
    """``agreement`` per group (question), one row each."""
    rows = [{"group": g, **agreement(rows, pred)} for g, rows in frame.groupby("group", sort=False)]
    return pd.DataFrame(rows)
