"""Can ONNX be the default on CPU? Mohler graded by both backends, and ``grade`` vs ``batch`` on ONNX.

    python benchmarks/onnx_agreement.py [--torch-scores graded.pkl]

Grades all of Mohler through the eval harness (drafted rubrics, linear score, the configured span
vectors) with the torch and the ONNX 8-bit encoder, and reports the share of answers whose ONNX score is
within 0.05 points of torch's, both Pearsons with the human grades and their difference (issue 19's
bar: >= 95% and <= 0.01). Then grades 200 Mohler answers on ONNX one at a time and all together and
counts any difference. Replaces the "ONNX as the default" section of benchmarks/results/encoders.md.
``--torch-scores`` names a pickle of the torch run: written by the first run, reused (not re-timed) after.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from eval.datasets import load_mohler
from eval.harness import grade_table, rubrics_for
from eval.metrics import pearson
from grader.encoder import load_encoder
from grader.grade import Grader
from grader.onnx_encoder import RECIPE
from grader.settings import PROJECT_ROOT, get_settings

MOHLER = PROJECT_ROOT.parent / "shared" / "data" / "mohler" / "mohler.csv"
OUT = PROJECT_ROOT / "benchmarks" / "results" / "encoders.md"
SECTION = "## ONNX as the default? Agreement with torch on Mohler"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--torch-scores", type=Path, help="the torch run's graded table: reused if it exists, else saved"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    settings = get_settings().model_copy(update={"calibration_path": None})
    frame = load_mohler(MOHLER)
    seconds = {}
    graded = {}
    for backend in ("onnx", "torch"):
        if backend == "torch" and args.torch_scores and args.torch_scores.is_file():
            graded[backend], seconds[backend] = pd.read_pickle(args.torch_scores), float("nan")
            continue
        encoder = load_encoder(settings.model_path, settings.encode_batch_size, backend, settings.onnx_cache_dir)
        started = time.perf_counter()
        graded[backend] = grade_table(frame, Grader(settings, encoder=encoder)).frame
        seconds[backend] = time.perf_counter() - started
        if backend == "torch" and args.torch_scores:
            graded[backend].to_pickle(args.torch_scores)
    t, o = graded["torch"]["score"].to_numpy(float), graded["onnx"]["score"].to_numpy(float)
    within = float(np.mean(np.abs(t - o) <= 0.05 + 1e-9))
    p_torch, p_onnx = pearson(frame["human"], t), pearson(frame["human"], o)

    onnx = Grader(settings, encoder=load_encoder(settings.model_path, 64, "onnx", settings.onnx_cache_dir))
    rubrics = rubrics_for(frame, onnx)
    items = [(rubrics[g], a) for g, a in zip(frame["group"], frame["answer"])][::11][:200]
    alone = [onnx.grade_many([item])[0] for item in items]
    together = onnx.grade_many(items[::-1])[::-1]
    differ = sum(a.model_dump() != b.model_dump() for a, b in zip(alone, together))

    meets = within >= 0.95 and abs(p_onnx - p_torch) <= 0.01
    torch_time = "reused (`--torch-scores`)" if np.isnan(seconds["torch"]) else f"{seconds['torch']:.0f} s"
    section = f"""{SECTION}

`python benchmarks/onnx_agreement.py` (span vectors: {settings.span_vectors}; recipe `{RECIPE}`; 1-minute load
average {os.getloadavg()[0]:.1f} at the end). All {len(frame)} Mohler answers graded through the eval harness (drafted
rubrics, linear score) by each backend; ONNX runs one text, or one answer's clauses packed, per session run.

| | value | bar (issue 19) |
|---|---:|---|
| ONNX scores within 0.05 points of torch's | **{within:.1%}** | >= 95% |
| Pearson with human grades, torch / ONNX | {p_torch:.3f} / {p_onnx:.3f} | |
| Pearson difference (ONNX - torch) | **{p_onnx - p_torch:+.3f}** | within 0.01 |
| mean absolute score difference (points of 5) | {np.mean(np.abs(t - o)):.3f} | |
| grading time torch / ONNX | {torch_time} / {seconds['onnx']:.0f} s | |
| ONNX `grade` one at a time vs `grade_many` of {len(items)} (whole result) | {differ} of {len(items)} differ | 0 |

Verdict: ONNX {"meets" if meets else "does not meet"} the agreement bar for the default (the latency bars are
measured by `benchmarks/load.py`).
"""
    text = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
    text = (text.split(SECTION)[0].rstrip() + "\n\n" if SECTION in text else text.rstrip() + "\n\n") + section
    args.out.write_text(text, encoding="utf-8")
    print(section)


if __name__ == "__main__":
    main()
