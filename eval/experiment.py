"""One experiment, every yardstick: ``python -m eval.experiment NAME [module.CONSTANT=value ...]``.

Grades the adversarial set, the ml_interview examples, Mohler and SAF training (embeddings reused
from ``--cache``, so a run takes about a minute once the cache is warm) and prints one summary:
attacks resisted, examples Spearman and per-kind means, and Pearson / kappa on Mohler (linear,
SAF-training transfer, cross-validated) and SAF training (linear, cross-validated). Overrides patch
a module constant or a threshold for this run only, e.g. ``score.FILLER_SIMILARITY=0.4`` or
``thresholds.covered_threshold=0.6``; results are appended to ``experiments.jsonl`` beside the cache.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections import defaultdict
from pathlib import Path

from grader.encoder import MemoEncoder, load_encoder
from grader.grade import Grader
from grader.rubric import load_rubrics
from grader.settings import PROJECT_ROOT, Settings, Thresholds

from .attacks import grader_scores, load_cases, resisted
from .datasets import load_dataset, load_mohler, load_saf_split
from .evaluate import evaluate, fit_transfer, grade_with_baselines
from .metrics import spearman

DEFAULT_CACHE = Path("/tmp/ev/memo-report.npz")


def _patch(overrides: list[str]) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for item in overrides:
        name, value = item.split("=", 1)
        module, attr = name.rsplit(".", 1)
        if module == "thresholds":
            thresholds[attr] = float(value)
            continue
        mod = importlib.import_module(f"grader.{module}")
        old = getattr(mod, attr)
        setattr(mod, attr, type(old)(float(value)) if isinstance(old, (int, float)) else value)
    return thresholds


def run(name: str, overrides: list[str], data_dir: Path, cache: Path, quick: bool) -> dict:
    thresholds = _patch(overrides)
    encoder = MemoEncoder(load_encoder())
    encoder.load(cache)
    grader = Grader(Settings(calibration_path=None, thresholds=Thresholds(**thresholds)), encoder=encoder)
    started = time.perf_counter()
    out: dict = {"name": name, "overrides": overrides}

    cases = load_cases(load_rubrics(PROJECT_ROOT / "rubrics"))
    out["attacks"] = resisted(cases, grader_scores(grader, cases))

    ex, _ = grade_with_baselines(load_dataset(PROJECT_ROOT / "eval" / "data" / "ml_interview"), grader)
    out["examples_spearman"] = round(spearman(ex["human"], ex["score"]), 3)
    out["examples_by_kind"] = {k: round(float(t["score"].mean()), 2) for k, t in ex.groupby("kind")}
    order_ok = 0
    for _, t in ex.groupby("group"):
        avg = t.groupby("kind")["score"].mean()
        order_ok += bool(avg["complete"] > avg["partial"] > avg["off_topic"])
    out["examples_order_ok"] = f"{order_ok}/{ex['group'].nunique()}"

    if not quick:
        saf, _ = grade_with_baselines(load_saf_split(data_dir / "saf" / "training"), grader)
        mohler, _ = grade_with_baselines(load_mohler(data_dir / "mohler" / "mohler.csv"), grader)
        transfer = fit_transfer(saf, "saf-training")
        for label, frame, tr in (("saf", saf, None), ("mohler", mohler, transfer)):
            m = evaluate(label, frame, tr).metrics
            m = m[m["method"] == "ours"].set_index("mapping")
            out[label] = {mp: (round(r.pearson, 3), round(r.qwk, 3)) for mp, r in m.iterrows()}
            out[f"{label}_zeroed"] = int(frame["zeroed"].sum())
            flags = defaultdict(int)
            for fl in frame["flags"]:
                for f in fl:
                    flags[f] += 1
            out[f"{label}_flags"] = dict(flags)
        encoder.save(cache, with_tokens=True)  # new texts (changed segmentation or drafting) kept for the next run
    out["seconds"] = round(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--quick", action="store_true", help="attacks and examples only")
    args = parser.parse_args()
    result = run(args.name, args.overrides, args.data_dir, args.cache, args.quick)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    with open(args.cache.parent / "experiments.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
