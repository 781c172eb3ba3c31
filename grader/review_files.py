"""Reviews in a spreadsheet: export results to review as a file, import the filled-in human scores as reviews.

The file has one row per result: ``id, rubric_id, answer, score, max_score, confidence, flags, missing,
human_score, comment`` (CSV, JSONL or Parquet by extension; ``flags`` and ``missing`` joined with
`` | `` in CSV). A teacher fills in ``human_score`` (and ``comment``); ``import_reviews`` stores each
filled row as a review, reports every row it cannot store (unknown id, a score that is not a number or
is outside 0..max_score) with its row number, and stores the rest. A row whose score and comment equal
the result's latest review is already stored and is left alone, so an export with ``--all`` can be
edited and imported again without doubling reviews.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from .errors import GraderError, InputFileError
from .files import LIST_SEPARATOR, file_format
from .review import ReviewedResult, ReviewInput

EXPORT_COLUMNS = ("id", "rubric_id", "answer", "score", "max_score", "confidence", "flags", "missing", "human_score", "comment")
LIST_COLUMNS = ("flags", "missing")


def export_reviews(store, out: Path, rubric_id: str | None = None, include_all: bool = False) -> int:
    """Write the results to review (unreviewed, needing review, least confident first) or, with
    ``include_all``, every stored result with its latest review filled in; returns the row count."""
    if include_all:
        items = store.results_with_reviews(rubric_id, reviewed_only=False)
    else:
        items = sorted(store.unreviewed(rubric_id), key=lambda r: (r.confidence, r.id))
    write_review_file(out, items)
    return len(items)


def write_review_file(out: Path, items: list[ReviewedResult]) -> None:
    fmt = file_format(out, role="output")
    rows = [
        {
            **{name: getattr(item, name) for name in EXPORT_COLUMNS[:-2]},
            "human_score": item.review.score if item.review else None,
            "comment": item.review.comment if item.review else None,
        }
        for item in items
    ]
    frame = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS)).astype({"human_score": "float64", "comment": "object"})
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(out, index=False)
    elif fmt == "jsonl":
        frame.to_json(out, orient="records", lines=True, force_ascii=False)
    else:
        for name in LIST_COLUMNS:
            frame[name] = [LIST_SEPARATOR.join(v) for v in frame[name]]
        frame.to_csv(out, index=False, lineterminator="\n")


def read_review_file(path: Path) -> pd.DataFrame:
    """The rows of a review file as text-or-number values; a file that cannot be read at all is an InputFileError."""
    fmt = file_format(path)
    if not Path(path).is_file():
        raise InputFileError(f"{path}: no such review file; write one with `grader review export --out FILE`", field="file")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype={"id": str})
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InputFileError(f"{path}: not readable as {fmt} ({err})", field="file") from None
    missing = [c for c in ("id", "human_score") if c not in frame.columns]
    if missing:
        raise InputFileError(
            f"{path}: no {', '.join(repr(c) for c in missing)} column; the file needs the columns "
            "`grader review export` writes (id, ..., human_score, comment)",
            field="file",
        )
    return frame


@dataclass
class RowError:
    row: int  # 1-based data row (the header is not counted)
    id: str
    message: str


@dataclass
class ImportReport:
    stored: int = 0
    unchanged: int = 0
    blank: int = 0
    errors: list[RowError] = field(default_factory=list)

    def describe(self) -> str:
        lines = [
            f"{self.stored} review(s) stored, {self.unchanged} unchanged, {self.blank} row(s) without a human_score, "
            f"{len(self.errors)} refused"
        ]
        lines += [f"row {e.row} (id {e.id!r}): {e.message}" for e in self.errors]
        return "\n".join(lines)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def import_reviews(store, path: Path, reviewer: str) -> ImportReport:
    """Store every row with a ``human_score`` as a review by ``reviewer``; bad rows are reported, not fatal."""
    frame = read_review_file(path)
    report = ImportReport()
    comments = frame["comment"] if "comment" in frame.columns else [None] * len(frame)
    for row, (result_id, raw_score, raw_comment) in enumerate(zip(frame["id"], frame["human_score"], comments), start=1):
        result_id = "" if _blank(result_id) else str(result_id).strip()
        if _blank(raw_score):
            report.blank += 1
            continue
        try:
            score = float(raw_score)
        except (TypeError, ValueError):
            report.errors.append(RowError(row, result_id, f"human_score {raw_score!r} is not a number"))
            continue
        comment = None if _blank(raw_comment) else str(raw_comment)
        try:
            review = ReviewInput(score=score, comment=comment)
        except ValidationError as err:
            first = err.errors()[0]
            report.errors.append(RowError(row, result_id, f"{'.'.join(map(str, first['loc']))}: {first['msg']}"))
            continue
        try:
            latest = store.latest_review(result_id)
            if latest is not None and (latest.score, latest.comment) == (score, comment):
                report.unchanged += 1
                continue
            store.add_review(result_id, review, reviewer)
        except GraderError as err:
            report.errors.append(RowError(row, result_id, err.message))
            continue
        report.stored += 1
    return report
