"""Human-graded data sets, each loaded into one table with the same columns.

Columns of every table (``COLUMNS``): ``dataset``, ``row_id``, ``group`` (the question; folds and
per-question metrics split on it), ``question``, ``reference`` (a reference answer, drafted into a
rubric) or ``rubric_id`` (a shipped rubric), ``answer``, ``human`` (the human score), ``max_score``,
``label`` (a class label where the data set has one), ``kind`` (the example's kind, ml_interview and
count_mode) and ``covers`` (the key point ids an example states, where the data set says).
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import yaml

from grader.errors import InputFileError
from grader.rubric import Rubric, load_rubrics

COLUMNS = [
    "dataset", "row_id", "group", "question", "reference", "rubric_id", "answer", "human", "max_score", "label", "kind",
    "covers",
]
SAF_SPLITS = ("training", "unseen_answers", "unseen_questions")


def _table(rows: list[dict], dataset: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    frame["dataset"] = dataset
    frame["human"] = frame["human"].astype(float)
    frame["max_score"] = frame["max_score"].astype(float)
    return frame.reset_index(drop=True)


def load_mohler(path: Path) -> pd.DataFrame:
    """Mohler et al. (2011): 0-5 scores, the mean of two graders (``score_avg``); one reference per question.

    Ten answers keep the HTML escapes of the site they were collected on ("const -&gt; nonconst"); they are
    read as the students typed them ("const -> nonconst").
    """
    raw = pd.read_csv(path, dtype={"id": str})
    needed = {"id", "question", "desired_answer", "student_answer", "score_avg"}
    if not needed <= set(raw.columns):
        raise InputFileError(f"{path}: expected Mohler columns {sorted(needed)}, found {sorted(raw.columns)}")
    rows = [
        {
            "row_id": f"{r.id}#{i}",
            "group": r.id,
            "question": r.question,
            "reference": r.desired_answer,
            "answer": html.unescape(str(r.student_answer)),
            "human": r.score_avg,
            "max_score": 5.0,
        }
        for i, r in enumerate(raw.itertuples())
    ]
    return _table(rows, "mohler")


def load_saf_split(folder: Path) -> pd.DataFrame:
    """One SAF split: a file per question with its reference answer and graded student answers.

    The group is the file name, not the XML ``id`` attribute, which repeats across files (4.2_LM and
    4.3_LM both say ``id="2.1"``). A question's max score is the highest score any of its answers got:
    the files do not state it, and every question has full-score answers (all are 1.0 in this release).
    """
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise InputFileError(f"{folder}: no SAF question files (*.xml) found; pass a SAF split folder")
    rows: list[dict] = []
    for file in files:
        root = ET.parse(file).getroot()
        question = " ".join((root.findtext("questionText") or "").split())
        reference = "\n".join(
            (ref.text or "").strip() for ref in root.iter("referenceAnswer") if (ref.text or "").strip()
        )
        answers = list(root.iter("studentAnswer"))
        top = max(float(a.findtext("score") or 0) for a in answers)
        for a in answers:
            rows.append(
                {
                    "row_id": a.get("id"),
                    "group": file.stem,
                    "question": question,
                    "reference": reference,
                    "answer": (a.findtext("response") or "").strip(),
                    "human": float(a.findtext("score") or 0),
                    "max_score": top or 1.0,
                    "label": (a.findtext("verification_feedback") or "").strip(),
                }
            )
    return _table(rows, f"saf-{folder.name}")


def load_saf(path: Path) -> pd.DataFrame:
    """A SAF split folder, or the SAF root (then every split, each its own ``dataset`` value)."""
    if any(path.glob("*.xml")):
        return load_saf_split(path)
    splits = [path / s for s in SAF_SPLITS if (path / s).is_dir()]
    if not splits:
        raise InputFileError(f"{path}: not a SAF folder (expected *.xml files or {', '.join(SAF_SPLITS)}/)")
    return pd.concat([load_saf_split(s) for s in splits], ignore_index=True)


def _example_rows(folder: Path) -> list[dict]:
    """The graded example answers of ``folder``'s ``<rubric-id>.yaml`` files (the ml_interview shape)."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise InputFileError(f"{folder}: no example files (<rubric-id>.yaml) found")
    rows: list[dict] = []
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        rubric_id = data.get("rubric_id", file.stem)
        for ex in data.get("examples", []):
            rows.append(
                {
                    "row_id": ex["id"],
                    "group": rubric_id,
                    "rubric_id": rubric_id,
                    "answer": ex["answer"],
                    "human": ex["expected_score"],
                    "max_score": float("nan"),  # filled from the rubric when graded
                    "kind": ex.get("kind", ""),
                    "covers": list(ex.get("covers", [])),  # the key points the example states
                }
            )
    return rows


def load_ml_interview(folder: Path) -> pd.DataFrame:
    """Our example answers for the shipped rubrics, graded against ``rubrics/<rubric_id>.yaml``."""
    return _table(_example_rows(folder), "ml_interview")


def count_mode_rubrics(folder: Path) -> dict[str, Rubric]:
    """The count-mode set's own rubrics (``<folder>/rubrics``), by id: they are test data, not shipped."""
    return load_rubrics(Path(folder) / "rubrics")


def load_count_mode(folder: Path) -> pd.DataFrame:
    """Our graded answers to "name / list N ..." questions, scored in count mode by ``<folder>/rubrics``.

    The rubric ids are not in the shipped rubrics directory: grade with ``count_mode_rubrics(folder)``.
    """
    rubrics = count_mode_rubrics(folder)
    frame = _table(_example_rows(Path(folder)), "count_mode")
    unknown = sorted(set(frame["rubric_id"]) - rubrics.keys())
    if unknown:
        raise InputFileError(f"{folder}: examples name rubrics missing from {Path(folder) / 'rubrics'}: {unknown}")
    frame["max_score"] = [rubrics[r].max_score for r in frame["rubric_id"]]
    return frame


def load_dataset(path: Path) -> pd.DataFrame:
    """Whichever data set ``path`` is: a Mohler CSV, a SAF folder, or an ml_interview examples folder."""
    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        return load_mohler(path)
    if path.is_dir():
        if any(path.glob("*.xml")) or any((path / s).is_dir() for s in SAF_SPLITS):
            return load_saf(path)
        if (path / "rubrics").is_dir() and any(path.glob("*.yaml")):
            return load_count_mode(path)
        if any(path.glob("*.yaml")):
            return load_ml_interview(path)
    raise InputFileError(
        f"{path}: not a known data set; pass mohler.csv, a SAF folder (or split), eval/data/ml_interview "
        "or eval/data/count_mode"
    )
