"""The report's figures as PNG files: human vs predicted, agreement per question, calibration curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from grader.calibrate import Calibration  # noqa: E402


def _save(fig, ax, title: str, path: Path) -> Path:
    """Legend, title and a tight PNG: the same finish for every figure of the report."""
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scatter(frame: pd.DataFrame, columns: dict[str, str], path: Path, title: str) -> Path:
    """Human score against each predicted column (jittered: human scores sit on a few values)."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 4), sharey=True, squeeze=False)
    rng = np.random.default_rng(0)
    top = float(frame["max_score"].max())
    for ax, (label, col) in zip(axes[0], columns.items()):
        jitter = rng.uniform(-0.04, 0.04, len(frame)) * top
        ax.scatter(frame[col], frame["human"] + jitter, s=4, alpha=0.3)
        ax.plot([0, top], [0, top], color="grey", lw=0.8)
        ax.set_xlabel(f"predicted ({label})")
        ax.set_xlim(-0.05 * top, 1.05 * top)
    axes[0][0].set_ylabel("human score")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_question_bars(table: pd.DataFrame, methods: dict[str, tuple[str, str]], path: Path, title: str) -> Path:
    """Pearson per question for a few (method, mapping) pairs, questions sorted by our agreement."""
    wide = {
        label: table[(table.method == m) & (table.mapping == mp)].set_index("group")["pearson"]
        for label, (m, mp) in methods.items()
    }
    frame = pd.DataFrame(wide)
    frame = frame.sort_values(frame.columns[0])
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(frame) * len(wide)), 4))
    width = 0.8 / len(wide)
    x = np.arange(len(frame))
    for i, col in enumerate(frame.columns):
        ax.bar(x + i * width, frame[col].fillna(0), width, label=col)
    ax.set_xticks(x + 0.4 - width / 2, frame.index, rotation=90, fontsize=6)
    ax.set_ylabel("Pearson with human")
    ax.axhline(0, color="grey", lw=0.6)
    return _save(fig, ax, title, path)


def calibration_curve(frame: pd.DataFrame, calibration: Calibration, path: Path, title: str) -> Path:
    """Mean human share per bin of the calibration's linear score, with the fitted mapping over it."""
    z = calibration.linear(frame[calibration.features].to_numpy(float))
    share = (frame["human"] / frame["max_score"]).to_numpy(float)
    bins = np.unique(np.quantile(z, np.linspace(0, 1, 16)))
    idx = np.clip(np.digitize(z, bins[1:-1]), 0, len(bins) - 2)
    centers = [z[idx == b].mean() for b in range(len(bins) - 1) if (idx == b).any()]
    means = [share[idx == b].mean() for b in range(len(bins) - 1) if (idx == b).any()]
    grid = np.linspace(z.min(), z.max(), 200)
    mapped = np.clip(np.interp(grid, calibration.knots_x, calibration.knots_y) if calibration.knots_x else grid, 0, 1)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(z, share, s=3, alpha=0.15, label="answers")
    ax.plot(centers, means, "o-", color="C1", label="human mean per bin")
    ax.plot(grid, mapped, color="C2", lw=2, label=f"mapping {calibration.name}")
    ax.set_xlabel("linear score of features")
    ax.set_ylabel("human score / max")
    return _save(fig, ax, title, path)
