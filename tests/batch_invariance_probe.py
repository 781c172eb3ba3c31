"""Run by tests/test_grade.py in a fresh process: grade answers alone and among batch-mates, print JSON.

A fresh process is how a first request meets the grader: no rubric is cached, so its key points are
encoded in the same call as the first answers. ``argv[1]`` says which comes first.
"""

import json
import sys

import yaml

from grader.grade import Grader
from grader.rubric import load_rubrics
from grader.settings import PROJECT_ROOT, Settings


def visible(result) -> dict:
    """What the promise covers: the score at its printed precision, statuses, flags, missing points."""
    return {
        "score": result.score,
        "statuses": [v.status for v in result.key_points],
        "flags": result.flags,
        "missing": result.missing,
    }


def main(order: str) -> None:
    rubrics = load_rubrics(PROJECT_ROOT / "rubrics")
    items = []
    for path in sorted((PROJECT_ROOT / "eval" / "data" / "ml_interview").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        items += [(rubrics[data["rubric_id"]], ex["answer"]) for ex in data["examples"]]
    items = items[::4][:32]  # 32 answers over many rubrics and lengths
    grader = Grader(Settings(rubrics_dir=PROJECT_ROOT / "rubrics", database_url="sqlite://"))
    if order == "alone-first":
        alone = [grader.grade(r, a) for r, a in items]
        together = grader.grade_many(items)
    else:
        together = grader.grade_many(items[::-1])[::-1]
        alone = [grader.grade(r, a) for r, a in items]
    json.dump({"alone": [visible(r) for r in alone], "together": [visible(r) for r in together]}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
