"""The learning curve of the review loop: agreement after k reviewed answers per question, picked two ways.

Protocol (Mohler and SAF training): for every question, k of its answers are "reviewed" (their human
score becomes known) and every other answer of the question is predicted; Pearson with the human
scores is computed over all unreviewed answers of the data set (k = 0, 5, 10, 20). Answers are
reviewed at random (mean of ``SEEDS`` draws) or picked by the grader (``pick_for_review``).

Methods:
- **baseline** (from issue 20): plain answer-vs-reference embedding cosine x max_score, blended half and
  half with a similarity-weighted vote (cosine of the answers' embeddings) of the reviewed answers'
  human scores; at k = 0 the cosine alone.
- **ours**: the grader's calibrated score, corrected by its reviewed neighbours: each reviewed answer
  of the question votes for how far the grader was off on it (human - grader), with weight
  ``exp((sim - 1) / TAU)`` on the answers' similarity, so near-duplicates of a reviewed answer land
  near its human score and a far one barely moves a grade; the correction is shrunk by ``SHRINK``.
  The grader's score is the one a user gets: on Mohler the calibration fitted on SAF training only
  (``eval/calibration/saf-training.json``), on SAF training the calibration cross-validated by question
  (no question is fitted and predicted).

Parameters were chosen on SAF training and applied to Mohler unchanged.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from grader.calibrate import FEATURES, load_calibration
from grader.grade import Grader
from grader.review import pick_informative
from grader.settings import PROJECT_ROOT, Settings

from .calibration import apply_calibration, cross_validated
from .datasets import load_mohler, load_saf_split
from .evaluate import grade_with_baselines
from .metrics import pearson

EVAL_DIR = PROJECT_ROOT / "eval"
KS = (0, 5, 10, 20)
SEEDS = range(5)
TAU = 0.1
SHRINK = 1.0
BASELINE_BLEND = 0.5
