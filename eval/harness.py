"""Grade a data-set table through the path users use, and keep what calibration and metrics need.

References become rubrics with ``grader.draft.draft_rubric`` (once per distinct question +
reference); rubric ids resolve in the rubrics directory. Rows are graded in large chunks with
``Grader.grade_many`` (one encode call per chunk). The result is the input table plus the grade,
the grader's coverage and the calibration features of every row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from grader.calibrate import FEATURES, features_from
from grader.draft import draft_rubric
from grader.errors import GraderError
from grader.grade import Grader
from grader.match import RubricVectors, rubric_texts, word_share
from grader.rubric import Rubric, resolve_rubric
from grader.score import ZERO_SCORE_FLAGS, coverage_of

CHUNK_ROWS = 1024  # rows per grade_many call: big enough to batch encoding well, small enough for memory


@dataclass
class GradedTable:
    frame: pd.DataFrame  # the input columns + score, coverage, error, flags, zeroed and one column per feature
    rubrics: dict[str, Rubric]  # by row group
    seconds: float  # wall time of drafting and grading


def rubrics_for(frame: pd.DataFrame, grader: Grader) -> dict[str, Rubric]:
    """One rubric per group: drafted from the group's reference, or the named shipped rubric."""
    out: dict[str, Rubric] = {}
    for group, rows in frame.groupby("group", sort=False):
        first = rows.iloc[0]
        if isinstance(first["rubric_id"], str) and first["rubric_id"]:
            out[group] = resolve_rubric(first["rubric_id"], grader.settings.rubrics_dir)
        else:
            max_score = float(rows["max_score"].max())
            rid = "q-" + "".join(ch if ch.isalnum() else "-" for ch in str(group).lower()).strip("-")
            out[group] = draft_rubric(first["question"], first["reference"], rid, max_score)
    return out


def rubric_vectors(rubrics: dict[str, Rubric], grader: Grader) -> dict[str, RubricVectors]:
    """Each rubric's vectors (key-point-to-question similarities, word lists), as the grading path builds them."""
    texts = {g: rubric_texts(r) for g, r in rubrics.items()}
    vectors = grader.encoder.encode([t for ts in texts.values() for t in ts])
    out, i = {}, 0
    for g, r in rubrics.items():
        out[g] = RubricVectors.from_embeddings(r, vectors[i : i + len(texts[g])])
        i += len(texts[g])
    return out


def grade_table(frame: pd.DataFrame, grader: Grader, rubrics: dict[str, Rubric] | None = None) -> GradedTable:
    """Grade every row; a row the grader rejects keeps its error and a score of 0.

    ``rubrics`` (by group) grades against rubrics that are neither shipped nor drafted from the rows.
    """
    started = time.perf_counter()
    rubrics = rubrics or rubrics_for(frame, grader)
    items = [(rubrics[g], a) for g, a in zip(frame["group"], frame["answer"])]
    results: list = []
    for i in range(0, len(items), CHUNK_ROWS):
        results += grader.grade_many(items[i : i + CHUNK_ROWS])
    out = frame.copy()
    out["max_score"] = [rubrics[g].max_score for g in frame["group"]]
    out["score"] = [0.0 if isinstance(r, GraderError) else r.score for r in results]
    out["coverage"] = [0.0 if isinstance(r, GraderError) else r.coverage for r in results]
    out["confidence"] = [0.0 if isinstance(r, GraderError) else r.confidence for r in results]
    out["error"] = [r.message if isinstance(r, GraderError) else "" for r in results]
    out["flags"] = [[] if isinstance(r, GraderError) else r.flags for r in results]
    rvs = rubric_vectors(rubrics, grader)
    feats = [
        # Coverage before zero-score flags, as the grading path hands it to the calibration.
        dict.fromkeys(FEATURES, 0.0)
        if isinstance(r, GraderError)
        else features_from(
            r.key_points, coverage_of(rubrics[g], r.key_points), rvs[g].question_similarity, word_share(str(a), rvs[g])
        )
        for r, g, a in zip(results, frame["group"], frame["answer"])
    ]
    out["zeroed"] = [isinstance(r, GraderError) or bool(set(r.flags) & ZERO_SCORE_FLAGS) for r in results]
    # The uncalibrated score beside the grader's own: weighted coverage x max_score, less misconception penalties.
    out["linear"] = [
        0.0 if isinstance(r, GraderError) else max(0.0, r.coverage * r.max_score - sum(h.penalty for h in r.misconceptions))
        for r in results
    ]
    # Per key point (for fitting grader.mapping): id, weight, status and the accepted-evidence features.
    out["points"] = [
        [] if isinstance(r, GraderError) else [(v.id, v.weight, v.status, v.features) for v in r.key_points]
        for r in results
    ]
    # What the review curve needs to apply the guards after a neighbour pull (grader.score.ShareLimits).
    out["probability"] = [
        [] if isinstance(r, GraderError) else [v.probability or 0.0 for v in r.key_points] for r in results
    ]
    out["credit"] = [[] if isinstance(r, GraderError) else [v.credit for v in r.key_points] for r in results]
    out["penalty"] = [0.0 if isinstance(r, GraderError) else sum(h.penalty for h in r.misconceptions) for r in results]
    for name in FEATURES:
        out[name] = [f[name] for f in feats]
    return GradedTable(out, rubrics, time.perf_counter() - started)
