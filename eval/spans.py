"""Span vectors pooled from one pass vs encoded one span at a time, side by side (issue 19).

    python -m eval.spans grade --mode separate   # grade Mohler, every SAF split and the attacks one way
    python -m eval.spans grade --mode pooled
    python -m eval.spans report                  # eval/SPANS.md from the two graded sets

Each mode grades through ``Grader.grade_many`` with ``GRADER_SPAN_VECTORS`` set, on the current default
(linear) score and on the shipped calibration as it is (``eval/calibration/saf-training.json``, applied,
never refitted here), plus a cross-validated mapping. Pearson comes with the question-bootstrap 95% interval
the report uses, and the pooled - separate difference with a paired interval (the same questions drawn for
both). The graded tables are kept in ``--work`` so the slow mode need not be graded again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from grader.calibrate import Calibration
from grader.encoder import load_encoder
from grader.grade import Grader
from grader.rubric import load_rubrics
from grader.settings import PROJECT_ROOT, Settings

from .attacks import RULES, grader_scores, load_cases, resisted
from .calibration import apply_calibration, cross_validated
from .datasets import load_mohler, load_saf
from .evaluate import OUR_FEATURES
from .harness import grade_table
from .metrics import pearson, pearson_interval, paired_difference_interval

MODES = ("separate", "pooled")
SHIPPED = PROJECT_ROOT / "eval" / "calibration" / "saf-training.json"
OUT = PROJECT_ROOT / "eval" / "SPANS.md"
DATASETS = ("mohler", "saf-training", "saf-unseen_answers", "saf-unseen_questions")
DECISION = """## Variants measured, and the choice

The pooled column above is the **packed** pooled mode with the per-point filler-window rule (below): an answer's
clauses are read in one pass, laid end to end with their own positions and special tokens, each attending only to
itself, so every clause has exactly the vector it has when read alone; a window's and the whole answer's vector is
the mean of their clauses' word pieces (each clause's vector weighted by its number of pieces). The separate column
was graded before that rule (it changes separate grades too; they were not regraded in the time). Graded on
2026-12-04 (shared machine, 1-minute load average 3-8, so grading times are only indicative; SAF's time is for all
three splits together). All variants, paired differences pooled - separate:

| pooled variant | Mohler linear / calibrated (paired diff) | SAF training linear / calibrated (paired diff) | negated | padding | other attacks |
|---|---|---|---|---|---|
| every span pooled from one contextual pass over the answer | -0.003 / +0.008 | **-0.052** (-0.073 to -0.027) / -0.012 (-0.020 to -0.004) | **6/12** | **10/12** | 12/12 |
| clauses a guard judges alone (a negation, a direction word, 12+ words, or a near-copy of the question) also encoded alone, the rest pooled from that pass | -0.003 / +0.003 | -0.003 / -0.007 (-0.011 to -0.002) | **11/12** | **10/12** | 12/12 |
| every clause encoded alone, windows and whole answer pooled from that pass | not graded | not graded | 12/12 | **9/12** | 12/12 |
| packed: every clause read alone in one pass, windows from their clauses | -0.000 / -0.002 | -0.001 / -0.003 (-0.005 to -0.002) | 12/12 | **11/12** | 12/12 |
| **packed + a long sentence that does not make key point k by itself cannot join a window as evidence for k (the table above)** | -0.000 / -0.002 | -0.002 / -0.002 (-0.004 to -0.001) | 12/12 | 12/12 | 12/12 |

Why the contextual variants failed: a clause pooled from the whole answer takes its neighbours' topic ("Leaky
ReLU's small negative slope fixes this." came to 0.77 of the vanishing-gradient point the answer denied, 0.40 alone,
so the denial no longer outweighed the support and the negated ReLU answer kept full marks). Reading every clause
on its own removes that; packing the clauses into one pass keeps it to one forward pass per answer.

Why packed alone failed padding (gradient descent, partial 3.984, padded 4.096 of 5): the mean of two clause
vectors that point different ways is nearer what they share than either: the first statement (0.557 to "training
proceeds iteratively ... loss gets smaller") beside the 13-word filler "Optimization is at the heart of all of
machine learning and artificial intelligence." (0.344) reached 0.601 as a window (0.564 read together). The filler
rule did not catch the sentence because it comes to 0.501 of another point (local minima); asked per key point, it
does.

The choice: every attack row holds and every pooled Pearson lies inside the separate one's question-bootstrap
interval (paired differences -0.011 to +0.018; the only intervals that exclude 0 are Mohler and SAF training
calibrated, -0.002 each), so **pooled is the default** (``GRADER_SPAN_VECTORS=pooled``); ``separate`` stays
available. With ONNX, pooled reads the clauses in one packed session run too (the exported graph builds the mask from each token's owner).
"""


def grade(mode: str, data_dir: Path, work: Path) -> None:
    settings = Settings(calibration_path=None, span_vectors=mode)
    grader = Grader(settings, encoder=load_encoder(settings.model_path, settings.encode_batch_size))
    work.mkdir(parents=True, exist_ok=True)
    cases = load_cases(load_rubrics(PROJECT_ROOT / "rubrics"))
    pd.DataFrame([resisted(cases, grader_scores(grader, cases))]).to_json(work / f"attacks-{mode}.json")
    frames = [load_mohler(data_dir / "mohler" / "mohler.csv"), load_saf(data_dir / "saf")]
    for frame in frames:
        started = time.perf_counter()
        graded = grade_table(frame, grader)
        seconds = time.perf_counter() - started
        for name, rows in graded.frame.groupby("dataset", sort=False):
            rows.assign(seconds=seconds * len(rows) / len(graded.frame)).to_pickle(work / f"{name}-{mode}.pkl")
        print(f"{mode}: {len(frame)} answers in {seconds:.0f} s", flush=True)


def predictions(frame: pd.DataFrame, shipped: Calibration) -> pd.DataFrame:
    """Linear, shipped-calibration and cross-validated scores of one graded table."""
    keep = ~frame["zeroed"].to_numpy(bool)
    out = frame.copy()
    out["linear"] = frame["score"]
    out["calibrated"] = apply_calibration(shipped, frame) * keep
    out["cv"] = cross_validated(frame, OUR_FEATURES, fit_mask=keep) * keep
    return out


def report(work: Path, out: Path) -> str:
    shipped = Calibration.model_validate_json(SHIPPED.read_text(encoding="utf-8"))
    rows = []
    for name in DATASETS:
        graded = {m: predictions(pd.read_pickle(work / f"{name}-{m}.pkl"), shipped) for m in MODES}
        both = graded["separate"][["group", "human", "max_score"]].copy()
        for mapping in ("linear", "calibrated", "cv"):
            for m in MODES:
                both[f"{m}:{mapping}"] = graded[m][mapping].to_numpy()
            rows.append({
                "data set": name, "answers": len(both), "score": mapping,
                **{f"{m} pearson (95% interval)": f"{pearson(both['human'], both[f'{m}:{mapping}']):.3f} "
                   f"({pearson_interval(both, f'{m}:{mapping}')})" for m in MODES},
                "pooled - separate (paired 95% interval)": paired_difference_interval(
                    both, f"pooled:{mapping}", f"separate:{mapping}"
                ),
                "grading ms/answer, separate / pooled (SAF: all splits)": " / ".join(
                    f"{graded[m]['seconds'].iloc[0] / len(both) * 1000:.0f}" for m in MODES
                ),
            })
    attacks = {m: pd.read_json(work / f"attacks-{m}.json").iloc[0].to_dict() for m in MODES}
    table = pd.DataFrame(rows).fillna("")
    lines = [
        "# Span vectors: pooled from one pass vs encoded one by one",
        "",
        "Generated by `python -m eval.spans grade --mode separate`, `... --mode pooled`, `python -m eval.spans report`.",
        "",
        "**separate**: every clause, window of 2-3 clauses and the whole answer is its own forward pass (the "
        "grader before issue 19). **pooled** (`GRADER_SPAN_VECTORS=pooled`): the answer's clauses are read in one "
        "packed pass, each attending only to itself; a window's and the whole answer's vector is the mean of its "
        "clauses' word pieces; word-token vectors for the alignment come from the same pass. Key points and "
        "questions are encoded on their own either way.",
        "",
        "Scores: **linear** is the default grade as the grader gives it (since issue 18 the evidence mapping, evidence@v1, not coverage x max_score); **calibrated** applies the shipped "
        "`eval/calibration/saf-training.json` as it is (fitted on separately encoded spans, not refitted); "
        "**cv** is a mapping cross-validated by question on the same data set with the same features. Intervals: "
        "whole questions resampled 1000 times; the difference's interval draws the same questions for both modes.",
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "---|" * len(table.columns),
        *("| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)),
        "",
        "## Attacks (eval/ATTACKS.md rules, 12 cases)",
        "",
        "| attack | separate | pooled |",
        "|---|---|---|",
        *(f"| {a} | {attacks['separate'][a]}/12 | {attacks['pooled'][a]}/12 |" for a in RULES),
        "",
        DECISION,
    ]
    text = "\n".join(lines)
    out.write_text(text, encoding="utf-8")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("grade", "report"))
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/spans"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.action == "grade":
        grade(args.mode, args.data_dir, args.work)
    else:
        print(report(args.work, args.out))


if __name__ == "__main__":
    main()
