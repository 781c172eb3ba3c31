"""What the language guard flags on the human-graded data: ``python -m eval.guard_flags [--show]``.

A flag zeroes an answer, so every flag on answers that humans graded is worth a look: the table gives,
per data set, how many answers are flagged ``other_language`` or ``gibberish`` and the human mean share
of max score of those answers (near 0 means the flags are right). It also gives the Spearman of a
plain word-overlap share (the reference's content stems the answer uses) with the human share, which
shows what the stemmer alone does for the word-share feature. Text only: no model is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from grader.guards import content_stems, is_non_answer
from grader.language import language_flag
from grader.settings import PROJECT_ROOT

from .datasets import load_mohler, load_saf_split
from .metrics import spearman

DATA = PROJECT_ROOT.parent / "shared" / "data"
FLAGS = ("other_language", "gibberish")


def load_all(data: Path) -> pd.DataFrame:
    """Mohler and the three SAF splits, each its own ``dataset`` value."""
    splits = [load_saf_split(data / "saf" / s) for s in ("training", "unseen_answers", "unseen_questions")]
    return pd.concat([load_mohler(data / "mohler" / "mohler.csv"), *splits], ignore_index=True)


def _overlap(answer: str, reference: str) -> float:
    said = content_stems(reference)
    return len(said & content_stems(answer)) / len(said) if said else 0.0


def flag_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per data set: flag counts, flagged answers' human mean share, overlap Spearman; the flagged rows)."""
    frame = frame.assign(
        share=frame["human"] / frame["max_score"],
        # The grader judges the language only of answers that are not a non-answer ("No response.").
        flag=[None if is_non_answer(a) else language_flag(a) for a in frame["answer"]],
        overlap=[_overlap(a, r) for a, r in zip(frame["answer"], frame["reference"], strict=True)],
    )
    rows = []
    for name, part in frame.groupby("dataset", sort=False):
        row: dict[str, object] = {"dataset": name, "answers": len(part)}
        for flag in FLAGS:
            hit = part[part["flag"] == flag]
            row[flag] = len(hit)
            row[f"{flag} human share"] = round(hit["share"].mean(), 2) if len(hit) else None
        row["overlap spearman"] = round(spearman(part["share"], part["overlap"]), 3)
        rows.append(row)
    return pd.DataFrame(rows), frame[frame["flag"].notna()][["dataset", "row_id", "flag", "share", "answer"]]


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join("-" if pd.isna(v) else str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding mohler/ and saf/")
    parser.add_argument("--show", action="store_true", help="also print every flagged answer")
    args = parser.parse_args()
    table, flagged = flag_table(load_all(args.data))
    print(_markdown(table))
    if args.show:
        for r in flagged.itertuples():
            print(f"{r.dataset} {r.row_id} {r.flag} human={r.share:.2f}: {r.answer[:160]!r}")


if __name__ == "__main__":
    main()
