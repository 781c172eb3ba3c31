"""Can ONNX int8 be the default on CPU? Mohler graded by both backends, and ``grade`` vs ``batch`` on ONNX.

    python benchmarks/onnx_agreement.py [--torch-scores graded.pkl]

Grades all of Mohler through the eval harness (drafted rubrics, linear score, the configured span
vectors) with the torch and the ONNX int8 encoder, and reports the share of answers whose ONNX score is
within 0.05 points of torch's, both Pearsons with the human grades and their difference (issue 19's
bar: >= 95% and <= 0.01). Then grades 200 Mohler answers on ONNX one at a time and all together and
counts any difference. Replaces the "ONNX as the default" section of benchmarks/results/encoders.md.
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
from grader.settings import PROJECT_ROOT, get_settings

MOHLER = PROJECT_ROOT.parent / "shared" / "data" / "mohler" / "mohler.csv"
OUT = PROJECT_ROOT / "benchmarks" / "results" / "encoders.md"
SECTION = "## ONNX as the default? Agreement with torch on Mohler"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-scores", type=Path, help="a pickled graded table of the torch run to reuse")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    settings = get_settings().model_copy(update={"calibration_path": None})
    frame = load_mohler(MOHLER)
    seconds = {}
    graded = {}
    for backend in ("onnx", "torch"):
        if backend == "torch" and args.torch_scores:
            graded[backend], seconds[backend] = pd.read_pickle(args.torch_scores), float("nan")
            continue
        encoder = load_encoder(settings.model_path, settings.encode_batch_size, backend, settings.onnx_cache_dir)
        started = time.perf_counter()
        graded[backend] = grade_table(frame, Grader(settings, encoder=encoder)).frame
        seconds[backend] = time.perf_counter() - started
    t, o = graded["torch"]["score"].to_numpy(float), graded["onnx"]["score"].to_numpy(float)
    within = float(np.mean(np.abs(t - o) <= 0.05 + 1e-9))
    p_torch, p_onnx = pearson(frame["human"], t), pearson(frame["human"], o)

    onnx = Grader(settings, encoder=load_encoder(settings.model_path, 64, "onnx", settings.onnx_cache_dir))
    rubrics = rubrics_for(frame, onnx)
    items = [(rubrics[g], a) for g, a in zip(frame["group"], frame["answer"])][::11][:200]
    alone = [onnx.grade_many([item])[0] for item in items]
    together = onnx.grade_many(items[::-1])[::-1]
    differ = sum(a.model_dump() != b.model_dump() for a, b in zip(alone, together))

    section = f"""{SECTION}

`python benchmarks/onnx_agreement.py` (span vectors: {settings.span_vectors}; 1-minute load average
{os.getloadavg()[0]:.1f} at the end). All {len(frame)} Mohler answers graded through the eval harness (drafted
rubrics, linear score) by each backend; ONNX runs one text per session run (`ONNX_BATCH = 1`).

| | value | bar (issue 19) |
|---|---:|---|
| ONNX scores within 0.05 points of torch's | **{within:.1%}** | >= 95% |
| Pearson with human grades, torch / ONNX | {p_torch:.3f} / {p_onnx:.3f} | |
| Pearson difference (ONNX - torch) | **{p_onnx - p_torch:+.3f}** | within 0.01 |
| mean absolute score difference (points of 5) | {np.mean(np.abs(t - o)):.3f} | |
| grading time torch / ONNX | {seconds['torch']:.0f} s / {seconds['onnx']:.0f} s | |
| ONNX `grade` one at a time vs `grade_many` of {len(items)} (whole result) | {differ} of {len(items)} differ | 0 |

Verdict: ONNX {"meets" if within >= 0.95 and abs(p_onnx - p_torch) <= 0.01 else "does not meet"} the bar for the default.
The tables above this section were measured before issue 21, with ONNX batches of 16; since then every text has a
session run of its own, so a text's ONNX vector no longer depends on its batch-mates (`tests/test_onnx.py`), and the
remaining difference to torch is the int8 error itself, which moves a score across a status threshold often enough
to keep the share within 0.05 below the bar although Pearson is level.
"""
    text = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
    text = (text.split(SECTION)[0].rstrip() + "\n\n" if SECTION in text else text.rstrip() + "\n\n") + section
    args.out.write_text(text, encoding="utf-8")
    print(section)


if __name__ == "__main__":
    main()
