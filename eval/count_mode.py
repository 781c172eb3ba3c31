"""Count-mode rubrics ("name three ...") against their graded answers: ``python -m eval.count_mode``.

Our count-mode set (``eval/data/count_mode``: rubrics and hand-graded answers) is graded by the default
path: the expected number of stated key points (sum of the per-point probabilities) falls into the
rubric's bands. The yardstick is what a plain-cosine grader would do with the same bands: a key point
counts as named when some sentence of the answer is at least ``tau`` cosine-similar to it, with ``tau``
chosen by cross-validation (leave one rubric out, the kappa-best threshold on the others). Writes
``eval/COUNT_MODE.md`` with quadratic weighted kappa and both confusion matrices.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from grader.encoder import MemoEncoder, load_encoder
from grader.grade import Grader
from grader.rubric import Rubric
from grader.score import count_points
from grader.segment import segment_answer
from grader.settings import PROJECT_ROOT, Settings

from .datasets import count_mode_rubrics, load_count_mode
from .harness import grade_table

COUNT_DIR = PROJECT_ROOT / "eval" / "data" / "count_mode"
THRESHOLDS = np.round(np.arange(0.20, 0.81, 0.01), 2)


def kappa(human, pred) -> float:
    h, p = np.rint(np.asarray(human, float)).astype(int), np.rint(np.asarray(pred, float)).astype(int)
    labels = sorted(set(h) | set(p))
    return float(cohen_kappa_score(h, p, weights="quadratic", labels=labels)) if len(labels) > 1 else float("nan")


def sentence_point_max(frame: pd.DataFrame, rubrics: dict[str, Rubric], encoder) -> list[np.ndarray]:
    """Per answer: each key point's best cosine with any sentence of the answer."""
    sentences = [[c.text for c in segment_answer(str(a))] or [str(a)] for a in frame["answer"]]
    points = {g: [kp.text for kp in r.key_points] for g, r in rubrics.items()}
    unique = list(dict.fromkeys([s for group in sentences for s in group] + [t for ts in points.values() for t in ts]))
    vectors = encoder.encode(unique)
    row = {t: i for i, t in enumerate(unique)}
    return [
        (vectors[[row[t] for t in points[g]]] @ vectors[[row[s] for s in sents]].T).max(axis=1)
        for g, sents in zip(frame["group"], sentences)
    ]


def cosine_count_scores(sims: list[np.ndarray], groups: list[str], rubrics: dict[str, Rubric], tau: float) -> np.ndarray:
    return np.array([count_points(rubrics[g], float((s >= tau).sum())) for s, g in zip(sims, groups)])


def cross_validated_threshold(frame: pd.DataFrame, sims, rubrics) -> tuple[np.ndarray, list[float]]:
    """Leave one rubric out: the threshold with the best kappa on the other rubrics predicts this one."""
    groups = list(frame["group"])
    human = frame["human"].to_numpy(float)
    pred = np.zeros(len(frame))
    chosen = []
    for g in sorted(set(groups)):
        out = np.array([x == g for x in groups])
        best = max(THRESHOLDS, key=lambda t: kappa(human[~out], cosine_count_scores(
            [s for s, o in zip(sims, out) if not o], [x for x, o in zip(groups, out) if not o], rubrics, t)))
        chosen.append(float(best))
        pred[out] = cosine_count_scores([s for s, o in zip(sims, out) if o], [g] * int(out.sum()), rubrics, best)
    return pred, chosen


def _matrix(human, pred) -> str:
    h, p = np.rint(human).astype(int), np.rint(pred).astype(int)
    labels = sorted(set(h) | set(p))
    m = confusion_matrix(h, p, labels=labels)
    head = "| human \\ predicted | " + " | ".join(map(str, labels)) + " |\n|---|" + "---|" * len(labels) + "\n"
    return head + "".join(f"| **{lab}** | " + " | ".join(map(str, r)) + " |\n" for lab, r in zip(labels, m))


@dataclass
class CountModeResult:
    human: np.ndarray
    ours: np.ndarray
    cosine: np.ndarray  # plain cosine with the cross-validated threshold
    max_score: np.ndarray
    thresholds: list[float]  # the threshold chosen for each held-out rubric
    rubrics: int

    def zero_but_full(self, pred: np.ndarray) -> int:
        """Answers we graded 0 that get full marks."""
        return int(((self.human == 0) & (pred >= self.max_score)).sum())


def measure(encoder=None) -> CountModeResult:
    encoder = MemoEncoder(encoder or load_encoder())
    rubrics = count_mode_rubrics(COUNT_DIR)
    grader = Grader(Settings(rubrics_dir=COUNT_DIR / "rubrics"), encoder=encoder)
    graded = grade_table(load_count_mode(COUNT_DIR), grader, rubrics).frame
    sims = sentence_point_max(graded, rubrics, encoder)
    cosine, chosen = cross_validated_threshold(graded, sims, rubrics)
    return CountModeResult(graded["human"].to_numpy(float), graded["score"].to_numpy(float), cosine,
                           graded["max_score"].to_numpy(float), chosen, len(rubrics))


def run(out: Path) -> str:
    r = measure()
    text = (
        "# Count-mode rubrics: graded answers\n\n"
        f"Generated by `python -m eval.count_mode`. {len(r.human)} answers to {r.rubrics} count-mode rubrics "
        "(`eval/data/count_mode`, written and graded by us; not used to fit the mapping).\n\n"
        "| method | quadratic weighted kappa | answers graded 0 by us that get full marks |\n|---|---|---|\n"
        f"| this grader (default: expected count of stated points -> bands) | {kappa(r.human, r.ours):.3f} "
        f"| {r.zero_but_full(r.ours)} |\n"
        f"| plain cosine, one threshold per held-out rubric (cross-validated; chosen {min(r.thresholds):.2f}-"
        f"{max(r.thresholds):.2f}) | {kappa(r.human, r.cosine):.3f} | {r.zero_but_full(r.cosine)} |\n\n"
        "## Confusion matrix, this grader\n\n" + _matrix(r.human, r.ours)
        + "\n## Confusion matrix, plain cosine\n\n" + _matrix(r.human, r.cosine)
    )
    out.write_text(text, encoding="utf-8")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval" / "COUNT_MODE.md")
    print(run(parser.parse_args().out))


if __name__ == "__main__":
    main()
