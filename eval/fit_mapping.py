"""Fit the shipped score mapping (``grader/mappings/evidence.json``): ``python -m eval.fit_mapping``.

Fitted on SAF training, our graded examples (eval/data/ml_interview) and the generated attacks
(eval/data/generated_attacks.csv, when present), never on Mohler or the SAF unseen splits, which the
report measures it on. Two steps, both monotone:

1. Per key point, a logistic model of "the point is stated" on its accepted-evidence features, with
   non-negative weights. Labels come only from sets that say which points an answer states: an
   example's ``covers`` and a generated attack's stated points. (SAF grades answers, not points;
   labelling every point of its full-marks answers "stated" taught the model that a point with no
   evidence at all is stated more often than not: intercept -0.5, 0.37 for nothing.)
2. An isotonic curve from the expected coverage (weighted mean probability) to the human share of
   max_score, over every answer that states at least one key point and that no zero flag decides
   (an answer that states none scores 0 whatever the curve says, ``grader.score.mapped_points``).

Each data set weighs the same in both steps, so 1476 SAF answers do not drown 250 examples.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from grader.encoder import MemoEncoder, load_encoder
from grader.grade import Grader
from grader.mapping import POINT_FEATURES, SHIPPED_PATH, ScoreMapping
from grader.settings import PROJECT_ROOT, Settings

from .adversarial_gen import generation_rubrics
from .datasets import load_ml_interview, load_saf_split
from .harness import grade_table

ATTACKS_CSV = PROJECT_ROOT / "eval" / "data" / "generated_attacks.csv"
L2 = 1e-3  # keeps the weights finite where a feature separates the labels of one small set perfectly
MAX_KNOTS = 48  # isotonic steps kept in the artefact; more only fits noise of the fitting set


def point_table(graded: pd.DataFrame) -> pd.DataFrame:
    """One row per key point of every answer no zero flag decides: features, weight, status, label (or NaN)."""
    rows = []
    for _, r in graded[~graded["zeroed"]].iterrows():
        covers = r["covers"] if isinstance(r["covers"], list) else None
        for kp_id, weight, status, feats in r["points"]:
            label = float(kp_id in covers) if covers is not None else np.nan
            rows.append({"dataset": r["dataset"], "row_id": r["row_id"], "weight": weight, "status": status,
                         "label": label, **{f: feats[f] for f in POINT_FEATURES}})
    return pd.DataFrame(rows)


def _balanced(datasets: pd.Series) -> np.ndarray:
    """Sample weights under which every data set sums to the same total."""
    counts = datasets.map(datasets.value_counts())
    return (1.0 / counts).to_numpy(float) * len(datasets) / datasets.nunique()


def fit_points(points: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Non-negative logistic regression of the label on the features (weighted log-loss + L2)."""
    rows = points.dropna(subset=["label"])
    x, y = rows[list(POINT_FEATURES)].to_numpy(float), rows["label"].to_numpy(float)
    w = _balanced(rows["dataset"])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + x @ theta[1:]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-9
        value = -(w * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))).sum() / w.sum() + L2 * theta[1:] @ theta[1:]
        g = w * (p - y) / w.sum()
        return value, np.concatenate([[g.sum()], x.T @ g + 2 * L2 * theta[1:]])

    bounds = [(None, None)] + [(0.0, None)] * x.shape[1]
    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[1:], float(result.x[0])


def expected_coverage(graded: pd.DataFrame, mapping: ScoreMapping) -> np.ndarray:
    """Weighted mean probability per answer, contradicted points at 0 (as ``grader.score.mapped_points``)."""
    out = []
    for points in graded["points"]:
        if not points:
            out.append(0.0)
            continue
        weights = np.array([w for _, w, _, _ in points])
        x = np.array([[f[name] for name in POINT_FEATURES] for _, _, _, f in points])
        p = np.where([s == "contradicted" for _, _, s, _ in points], 0.0, mapping.probability(x))
        out.append(float(weights @ p / weights.sum()))
    return np.array(out)


def states_a_point(graded: pd.DataFrame) -> np.ndarray:
    """Answers with at least one key point covered or partial (the others score 0 under the mapping)."""
    return graded["points"].map(lambda pts: any(s in ("covered", "partial") for _, _, s, _ in pts)).to_numpy(bool)


def fit_curve(graded: pd.DataFrame, expected: np.ndarray) -> tuple[list[float], list[float]]:
    keep = ~graded["zeroed"].to_numpy(bool) & states_a_point(graded)
    share = (graded["human"] / graded["max_score"]).to_numpy(float)[keep]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(expected[keep], share, sample_weight=_balanced(graded["dataset"][keep]))
    kx, ky = iso.X_thresholds_, iso.y_thresholds_
    if len(kx) > MAX_KNOTS:
        pick = np.unique(np.linspace(0, len(kx) - 1, MAX_KNOTS).round().astype(int))
        kx, ky = kx[pick], ky[pick]
    return np.round(kx, 6).tolist(), np.round(ky, 6).tolist()


def fit_mapping(graded: pd.DataFrame, version: int = 1, mapping_id: str = "evidence") -> ScoreMapping:
    """The whole fit on a graded table (``grade_table`` output of the fitting sets, concatenated)."""
    points = point_table(graded)
    coef, intercept = fit_points(points)
    draft = ScoreMapping(id=mapping_id, version=version, fitted_on="", method="", features=list(POINT_FEATURES),
                         coef=np.round(coef, 6).tolist(), intercept=round(intercept, 6), knots_x=[0, 1], knots_y=[0, 1])
    knots_x, knots_y = fit_curve(graded, expected_coverage(graded, draft))
    sets = ", ".join(f"{name} ({n})" for name, n in graded["dataset"].value_counts().sort_index().items())
    return draft.model_copy(update={
        "fitted_on": sets,
        "method": f"non-negative logistic per key point (L2 {L2}) + isotonic expected coverage -> share, data sets weighted equally",
        "knots_x": knots_x, "knots_y": knots_y,
        "notes": {"answers": len(graded), "labelled_points": int(points["label"].notna().sum()),
                  "fitted": date.today().isoformat()},
    })


def load_generated_attacks(data_dir: Path, path: Path = ATTACKS_CSV) -> tuple[pd.DataFrame, dict]:
    """The generated attack variants as a data-set table (target share x max_score as the human score)."""
    raw = pd.read_csv(path, keep_default_na=False)
    rubrics = {r.id: r for r in generation_rubrics(saf_training=data_dir / "saf" / "training")}
    frame = pd.DataFrame({
        "dataset": "generated-attacks", "row_id": [f"{r}#{i}" for i, r in enumerate(raw["rubric_id"])],
        "group": raw["rubric_id"], "rubric_id": raw["rubric_id"], "answer": raw["answer"],
        "human": raw["target"] * raw["max_score"], "max_score": raw["max_score"], "kind": raw["kind"],
        "covers": [[s for s in str(x).split(" | ") if s] for x in raw["stated"]],
    })
    return frame, {g: rubrics[g] for g in frame["group"].unique()}


def fitting_sets(data_dir: Path, grader: Grader) -> pd.DataFrame:
    """SAF training, our examples and the generated attacks, graded (linear mapping: features only)."""
    attacks, attack_rubrics = load_generated_attacks(data_dir)
    graded = [
        grade_table(load_saf_split(data_dir / "saf" / "training"), grader).frame,
        grade_table(load_ml_interview(PROJECT_ROOT / "eval" / "data" / "ml_interview"), grader).frame,
        grade_table(attacks, grader, attack_rubrics).frame,
    ]
    return pd.concat(graded, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=SHIPPED_PATH)
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="an .npz of embeddings to reuse across runs")
    args = parser.parse_args()
    encoder = MemoEncoder(load_encoder())
    if args.cache:
        encoder.load(args.cache)
    grader = Grader(Settings(score_mapping="linear", calibration_path=None), encoder=encoder)
    graded = fitting_sets(args.data_dir, grader)
    if args.cache:
        encoder.save(args.cache, with_tokens=True)
    mapping = fit_mapping(graded, args.version)
    mapping.save(args.out)
    print(f"wrote {args.out}: {mapping.name}; coef {dict(zip(mapping.features, mapping.coef))}, intercept {mapping.intercept}")


if __name__ == "__main__":
    main()
