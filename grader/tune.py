"""Rubric tuning: how a rubric behaves on answers with human scores, and what a change would do.

``tune_rubric`` grades every answer once through ``Grader.grade_many`` and reports which key points
are hit, how well the grade separates good from poor answers, where grader and human disagree, and
covered / partial thresholds fitted to the human scores by cross-validation. ``compare_rubrics``
regrades the same answers with two rubric versions (the impact of an edit, before it is published).
Rendering (Markdown, HTML, plots) lives in ``eval/tune_report.py``; this module only computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from .check import check_rubrics
from .errors import GraderError, InputFileError
from .encoder import MemoEncoder
from .grade import Grader, scores_of
from .result import GradeResult
from .rubric import Rubric
from .segment import segment_answer

STATUSES = ("covered", "partial", "missing", "contradicted")
# Threshold grid for the fit: wide enough to hold the defaults (0.58 / 0.40) and their neighbours.
COVERED_GRID = tuple(np.round(np.arange(0.40, 0.801, 0.05), 2))
PARTIAL_GRID = tuple(np.round(np.arange(0.20, 0.601, 0.05), 2))
CV_FOLDS = 5
# A pair replaces the thresholds in force only if it beats them on the train folds by this much Pearson:
# with ~25 train answers and ~40 pairs, smaller gains are mostly noise and do not hold on held-out answers.
MIN_PEARSON_GAIN = 0.05
MIN_ANSWERS_TO_FIT = 10
CLUSTER_DISTANCE = 0.45  # cosine distance under which unmatched clauses say the same thing (average linkage)


class TuneData(BaseModel):
    answers: list[str]
    human: list[float] | None = Field(None, description="human scores on the rubric's scale, if the file has them")


def read_tune_data(path: str | Path) -> TuneData:
    """Answers (column ``answer``) and optional human scores (column ``score``) from a CSV or JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such data file; give a CSV or JSONL with an 'answer' column", field="data")
    try:
        frame = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as err:
        kind = "JSONL" if path.suffix == ".jsonl" else "CSV"
        raise InputFileError(f"{path}: not readable as {kind} ({err})") from None
    if "answer" not in frame.columns:
        raise InputFileError(f"{path}: no 'answer' column (found {', '.join(map(str, frame.columns))})", field="answer")
    frame = frame.dropna(subset=["answer"])
    human = None
    if "score" in frame.columns:
        scores = pd.to_numeric(frame["score"], errors="coerce")
        if scores.isna().any():
            raise InputFileError(f"{path}: column 'score' has {int(scores.isna().sum())} non-numeric or empty values")
        human = scores.astype(float).tolist()
    return TuneData(answers=frame["answer"].astype(str).tolist(), human=human)


# -- report models ---------------------------------------------------------------------------------


class KeyPointRate(BaseModel):
    id: str
    text: str
    counts: dict[str, int]
    hit_rate: float = Field(description="share of graded answers that cover the key point at least partly")


class Disagreement(BaseModel):
    index: int
    answer: str
    human: float
    grader: float
    flags: list[str]
    evidence: dict[str, str] = Field(description="key point id -> status and the clause that decided it")


class ThresholdFit(BaseModel):
    """Thresholds chosen on train folds, judged on held-out answers (never on the answers they were fit to)."""

    before: dict[str, float]
    suggested: dict[str, float] = Field(description="fitted on all answers; the ones to write into the rubric")
    folds: int
    fold_choices: list[dict[str, float]]
    heldout_pearson_before: float
    heldout_pearson_after: float
    heldout_mae_before: float
    heldout_mae_after: float


class SuggestedKeyPoint(BaseModel):
    text: str = Field(description="the clause nearest the cluster's centroid")
    answers: int = Field(description="how many well-scored answers make this point")
    examples: list[str]


class TuneReport(BaseModel):
    rubric_id: str
    answers: int
    graded: int
    errors: list[str]
    thresholds: dict[str, float]
    key_points: list[KeyPointRate]
    similarities: list[float] = Field(description="best similarity of each (answer, key point) pair")
    scores: list[float | None]
    human: list[float] | None
    pearson: float | None
    separation: dict[str, float] | None
    warnings: list[str]
    disagreements: list[Disagreement]
    threshold_fit: ThresholdFit | None
    suggested_key_points: list[SuggestedKeyPoint]


class ScoreChange(BaseModel):
    index: int
    answer: str
    old: float
    new: float
    delta: float


class RubricComparison(BaseModel):
    old_rubric: str
    new_rubric: str
    answers: int
    changed: int
    mean_abs_delta: float
    max_abs_delta: float
    mean_old: float
    mean_new: float
    changes: list[ScoreChange] = Field(description="answers whose score changed, largest change first")


# -- computing -------------------------------------------------------------------------------------


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; a constant side (no ranking at all) counts as no agreement rather than NaN."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _with_thresholds(rubric: Rubric, covered: float, partial: float) -> Rubric:
    # The content hash changes with the thresholds, which is right: they change every grade.
    return rubric.model_copy(update={"thresholds": {"covered_threshold": covered, "partial_threshold": partial}})


def fit_thresholds(
    grader: Grader, rubric: Rubric, answers: list[str], human: np.ndarray, seed: int = 0
) -> ThresholdFit:
    """Grid-search covered/partial thresholds maximising Pearson on train folds; score held-out folds (KFold)."""
    from sklearn.model_selection import KFold

    t = grader.thresholds_for(rubric)
    current = (t.covered_threshold, t.partial_threshold)
    pairs = [current] + [(c, p) for c in COVERED_GRID for p in PARTIAL_GRID if p < c and (c, p) != current]
    variants = [_with_thresholds(rubric, c, p) for c, p in pairs]
    # One grade_many call for every (threshold pair, answer): the memo encoder embeds each text once.
    results = grader.grade_many([(v, a) for v in variants for a in answers])
    grid = scores_of(results).reshape(len(pairs), len(answers))
    before = grid[0]  # the thresholds in force

    folds = min(CV_FOLDS, len(answers) // 2)
    heldout = np.zeros(len(answers))
    choices = []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(answers):
        best = _best_pair(grid[:, train], human[train])
        heldout[test] = grid[best, test]
        choices.append({"covered_threshold": pairs[best][0], "partial_threshold": pairs[best][1]})
    overall = _best_pair(grid, human)
    return ThresholdFit(
        before={"covered_threshold": t.covered_threshold, "partial_threshold": t.partial_threshold},
        suggested={"covered_threshold": pairs[overall][0], "partial_threshold": pairs[overall][1]},
        folds=folds,
        fold_choices=choices,
        heldout_pearson_before=round(_pearson(before, human), 4),
        heldout_pearson_after=round(_pearson(heldout, human), 4),
        heldout_mae_before=round(float(np.abs(before - human).mean()), 4),
        heldout_mae_after=round(float(np.abs(heldout - human).mean()), 4),
    )


def _best_pair(grid: np.ndarray, human: np.ndarray) -> int:
    """Row of ``grid`` (row 0: the thresholds in force) with the best Pearson, if it wins by a clear margin."""
    r = np.array([_pearson(row, human) for row in grid])
    best = int(r.argmax())
    return best if r[best] >= r[0] + MIN_PEARSON_GAIN else 0


def suggest_key_points(
    grader: Grader, rubric: Rubric, answers: list[str], partial_threshold: float, limit: int = 8
) -> list[SuggestedKeyPoint]:
    """Points that well-scored answers make but no key point matches, clustered by meaning."""
    from sklearn.cluster import AgglomerativeClustering

    clauses = [(i, c.text) for i, a in enumerate(answers) for c in segment_answer(a) if len(c.text.split()) >= 4]
    if len(clauses) < 2:
        return []
    texts = [t for _, t in clauses]
    vectors = grader.encoder.encode(texts + [kp.text for kp in rubric.key_points])
    clause_vecs, kp_vecs = vectors[: len(texts)], vectors[len(texts) :]
    unmatched = np.flatnonzero((clause_vecs @ kp_vecs.T).max(axis=1) < partial_threshold)
    if len(unmatched) < 2:
        return []
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=CLUSTER_DISTANCE, metric="cosine", linkage="average"
    ).fit_predict(clause_vecs[unmatched])
    suggestions = []
    for label in np.unique(labels):
        members = unmatched[labels == label]
        owners = {clauses[m][0] for m in members}
        if len(owners) < 2:  # one answer's idiosyncrasy is not a missing key point
            continue
        centroid = clause_vecs[members].mean(axis=0)
        order = members[np.argsort(-(clause_vecs[members] @ centroid))]
        suggestions.append(
            SuggestedKeyPoint(text=texts[order[0]], answers=len(owners), examples=[texts[m] for m in order[1:3]])
        )
    return sorted(suggestions, key=lambda s: -s.answers)[:limit]


def tune_rubric(grader: Grader, rubric: Rubric, data: TuneData, worst: int = 8) -> TuneReport:
    """Everything the tuning report shows, computed from one encode of the answers."""
    from sklearn.metrics import roc_auc_score

    grader = Grader(grader.settings, MemoEncoder(grader.encoder))
    answers = data.answers
    results = grader.grade_many([(rubric, a) for a in answers])
    graded = [(i, r) for i, r in enumerate(results) if isinstance(r, GradeResult)]
    errors = [f"answer {i + 1}: {r.message}" for i, r in enumerate(results) if isinstance(r, GraderError)]

    rates = []
    for k, kp in enumerate(rubric.key_points):
        counts = {s: sum(r.key_points[k].status == s for _, r in graded) for s in STATUSES}
        hit = (counts["covered"] + counts["partial"]) / max(len(graded), 1)
        rates.append(KeyPointRate(id=kp.id, text=kp.text, counts=counts, hit_rate=round(hit, 4)))
    sims = [v.similarity for _, r in graded for v in r.key_points]
    scores = [r.score if isinstance(r, GradeResult) else None for r in results]
    t = grader.thresholds_for(rubric)
    warnings = [str(w) for w in check_rubrics([rubric], grader.encoder)]

    pearson = separation = fit = None
    disagreements: list[Disagreement] = []
    good = list(range(len(answers)))
    if data.human is not None:
        human = np.array(data.human, dtype=float)
        ours = scores_of(results)
        pearson = round(_pearson(ours, human), 4)
        high = human >= np.median(human)
        separation = {
            "mean_score_high_half": round(float(ours[high].mean()), 3),
            "mean_score_low_half": round(float(ours[~high].mean()), 3) if (~high).any() else float("nan"),
        }
        if high.any() and (~high).any():
            separation["auc"] = round(float(roc_auc_score(high, ours)), 4)
        gap = np.abs(ours / rubric.max_score - human / max(human.max(), rubric.max_score))
        for i in np.argsort(-gap)[:worst]:
            r = results[i]
            evidence, flags = {}, [r.message] if isinstance(r, GraderError) else r.flags
            if isinstance(r, GradeResult):
                for v in r.key_points:
                    quote = f': "{v.evidence.text}"' if v.evidence else ""
                    evidence[v.id] = f"{v.status} ({v.similarity:.2f}){quote}"
            disagreements.append(
                Disagreement(
                    index=int(i),
                    answer=answers[i],
                    human=float(human[i]),
                    grader=float(ours[i]),
                    flags=flags,
                    evidence=evidence,
                )
            )
        if len(answers) >= MIN_ANSWERS_TO_FIT:
            fit = fit_thresholds(grader, rubric, answers, human)
        good = [i for i in range(len(answers)) if high[i]]

    return TuneReport(
        rubric_id=rubric.id,
        answers=len(answers),
        graded=len(graded),
        errors=errors,
        thresholds={"covered_threshold": t.covered_threshold, "partial_threshold": t.partial_threshold},
        key_points=rates,
        similarities=sims,
        scores=scores,
        human=data.human,
        pearson=pearson,
        separation=separation,
        warnings=warnings,
        disagreements=disagreements,
        threshold_fit=fit,
        suggested_key_points=suggest_key_points(grader, rubric, [answers[i] for i in good], t.partial_threshold),
    )


def compare_rubrics(grader: Grader, old: Rubric, new: Rubric, answers: list[str]) -> RubricComparison:
    """Regrade ``answers`` with both rubric versions in one call: which scores change, and by how much."""
    return comparison_of(old, new, answers, grader.grade_many(comparison_items(old, new, answers)))


def comparison_items(old: Rubric, new: Rubric, answers: list[str]) -> list[tuple[Rubric, str]]:
    """The (rubric, answer) pairs a comparison grades: every answer with the old, then with the new rubric."""
    return [(old, a) for a in answers] + [(new, a) for a in answers]


def comparison_of(
    old: Rubric, new: Rubric, answers: list[str], results: Sequence[GradeResult | GraderError], tolerance: float = 1e-6
) -> RubricComparison:
    """Summarise the grades of ``comparison_items`` (graded by whoever holds the grader: CLI or API worker)."""
    before, after = scores_of(results[: len(answers)]), scores_of(results[len(answers) :])
    delta = after - before
    changed = np.flatnonzero(np.abs(delta) > tolerance)
    changes = [
        ScoreChange(
            index=int(i), answer=answers[i], old=float(before[i]), new=float(after[i]), delta=round(float(delta[i]), 3)
        )
        for i in changed[np.argsort(-np.abs(delta[changed]), kind="stable")]
    ]
    n = len(answers)
    return RubricComparison(
        old_rubric=f"{old.id} v{old.version} ({old.content_hash})",
        new_rubric=f"{new.id} v{new.version} ({new.content_hash})",
        answers=n,
        changed=len(changes),
        mean_abs_delta=round(float(np.abs(delta).mean()), 4) if n else 0.0,
        max_abs_delta=round(float(np.abs(delta).max()), 4) if n else 0.0,
        mean_old=round(float(before.mean()), 4) if n else 0.0,
        mean_new=round(float(after.mean()), 4) if n else 0.0,
        changes=changes,
    )


def past_answers(store, rubric_id: str, limit: int) -> list[str]:
    """The most recent distinct answers graded against ``rubric_id`` (any version): the grades a change would touch."""
    from sqlalchemy import select

    from .store import ResultRow

    query = select(ResultRow.answer).where(ResultRow.rubric_id == rubric_id).order_by(ResultRow.created_at.desc())
    with store.session() as s:
        answers = list(dict.fromkeys(s.scalars(query.limit(limit * 4))))
    return answers[:limit]
