"""In-process: ``Grader.grade`` p50 against one bare pass over the same answer, and where a pooled grade's time goes.

No server, no store: the benchmark rubric and ~66-word answers of ``benchmarks/load.py``, graded one at a
time in each span-vector mode, each grade timed beside ``Encoder.read([answer])``; then cProfile over pooled
grades. The HTTP numbers are ``benchmarks/load.py``; this isolates the grader from the server.

    python benchmarks/grade_profile.py [--answers 60] [--modes pooled separate]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import yaml
from load import RUBRIC, make_answers

from grader.encoder import load_encoder
from grader.grade import Grader
from grader.rubric import Rubric
from grader.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=60)
    parser.add_argument("--modes", nargs="+", default=["pooled", "separate"])
    args = parser.parse_args()
    answers = make_answers(args.answers, seed=1)
    rubric = Rubric.model_validate(yaml.safe_load(RUBRIC))
    encoder = load_encoder()
    for mode in args.modes:
        grader = Grader(Settings(span_vectors=mode), encoder=encoder)
        grader.grade(rubric, answers[0])  # the rubric's vectors are cached from here on, as in a running server
        bare, graded = [], []
        for answer in answers[1:]:
            started = time.perf_counter()
            encoder.read([answer])
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            grader.grade(rubric, answer)
            graded.append(time.perf_counter() - started)
        b, g = statistics.median(bare) * 1000, statistics.median(graded) * 1000
        print(f"{mode}: bare pass p50 {b:.1f} ms, grade p50 {g:.1f} ms, ratio {g / b:.2f}x", flush=True)
        if mode == "pooled":
            profile = cProfile.Profile()
            profile.enable()
            for answer in answers[1:]:
                grader.grade(rubric, answer)
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(r"grader[/\\]", 25)


if __name__ == "__main__":
    main()
