"""Does a grade depend on its batch-mates? Grade a data set in chunks of 64 and one answer at a time.

Counts, over every row, how often anything a user sees differs: the score at its printed precision,
a key point's status, the flags, the missing points. Each way runs on a grader of its own, so the
first chunk meets an empty rubric cache, as a first request does. Writes ``eval/batch-invariance.md``.

    python -m eval.invariance --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from grader.errors import GraderError
from grader.grade import Grader
from grader.settings import PROJECT_ROOT, get_settings

from .datasets import load_mohler
from .harness import rubrics_for


def _visible(result) -> tuple:
    if isinstance(result, GraderError):
        return ("error", result.message)
    return (result.score, tuple(v.status for v in result.key_points), tuple(result.flags), tuple(result.missing))


def grade_in_chunks(items: list, size: int, label: str) -> list:
    grader = Grader(get_settings())
    out: list = []
    for i in tqdm(range(0, len(items), size), desc=f"chunks of {size}", unit="chunk", disable=None):
        out += grader.grade_many(items[i : i + size])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval" / "batch-invariance.md")
    args = parser.parse_args()
    frame = load_mohler(args.data_dir / "mohler" / "mohler.csv")
    grader = Grader(get_settings())
    rubrics = rubrics_for(frame, grader)
    items = [(rubrics[g], a) for g, a in zip(frame["group"], frame["answer"])]
    started = time.perf_counter()
    batched = grade_in_chunks(items, 64, "64")
    single = grade_in_chunks(items, 1, "1")
    seconds = time.perf_counter() - started
    differ = [i for i, (a, b) in enumerate(zip(batched, single)) if _visible(a) != _visible(b)]
    exact = sum(
        a.model_dump() == b.model_dump()
        for a, b in zip(batched, single)
        if not isinstance(a, GraderError) and not isinstance(b, GraderError)
    )
    text = (
        "# Batch invariance on Mohler\n\n"
        f"Every Mohler answer ({len(items)}) graded in chunks of 64 and one at a time, each way on a fresh grader "
        "(`python -m eval.invariance`).\n\n"
        "| answers | any user-visible difference (score at 3 decimals, a status, flags, missing) | whole result identical |\n"
        "|---|---|---|\n"
        f"| {len(items)} | {len(differ)} | {exact} |\n\n"
        f"Both passes took {seconds:.0f} s. Rows that differ: {differ[:20]}\n"
    )
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
