"""Does tuning help? Cross-validated threshold fits on Mohler questions, one drafted rubric each.

``python -m eval.tune_mohler /work/shared/data/mohler/mohler.csv [--every 6]`` prints a Markdown
table: held-out Pearson / MAE with the default thresholds and with the thresholds chosen per fold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from grader.draft import draft_rubric
from grader.grade import Grader
from grader.tune import MemoEncoder, TuneData, fit_thresholds

from .tune_report import _table


def sweep(path: Path, every: int = 6) -> pd.DataFrame:
    rows = pd.read_csv(path, dtype={"id": str})
    ids = sorted(rows.id.unique(), key=lambda s: tuple(int(x) for x in s.split(".")))[::every]
    base = Grader()
    grader = Grader(base.settings, MemoEncoder(base.encoder))
    out = []
    for qid in ids:
        q = rows[rows.id == qid]
        rubric = draft_rubric(q.question.iloc[0], q.desired_answer.iloc[0], "mohler-" + qid.replace(".", "-"), 5)
        data = TuneData(answers=q.student_answer.astype(str).tolist(), human=q.score_avg.tolist())
        fit = fit_thresholds(grader, rubric, data.answers, pd.Series(data.human).to_numpy())
        out.append(
            {
                "question": qid,
                "answers": len(q),
                "key points": len(rubric.key_points),
                "Pearson before": fit.heldout_pearson_before,
                "Pearson after (CV)": fit.heldout_pearson_after,
                "MAE before": fit.heldout_mae_before,
                "MAE after (CV)": fit.heldout_mae_after,
                "suggested": f"{fit.suggested['covered_threshold']} / {fit.suggested['partial_threshold']}",
            }
        )
        print(out[-1], flush=True)
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("--every", type=int, default=6, help="take every n-th question (all: 1)")
    args = parser.parse_args()
    table = sweep(args.data, args.every)
    print(_table(list(table.columns), table.values.tolist()))
    means = table[["Pearson before", "Pearson after (CV)", "MAE before", "MAE after (CV)"]].mean().round(3)
    improved = int((table["Pearson after (CV)"] > table["Pearson before"]).sum())
    print(f"\nmean: {means.to_dict()}; held-out Pearson improved on {improved} of {len(table)} questions")


if __name__ == "__main__":
    main()
