"""Answer files in and result files out, a chunk at a time, chosen by extension.

Readers never hold a whole file: CSV and JSONL are read record by record, Parquet with
``iter_batches``. A row that cannot be read (a broken JSONL line, a CSV record with the wrong
number of fields) is not dropped: it comes out with ``read_error`` set and becomes an error row.
Text is decoded with ``surrogateescape`` so one bad byte spoils one value, not the file; the
grader then reports that answer as not UTF-8.

Writers append chunk by chunk to ``OUTPUT.partial`` and return a *position* after each chunk
(a byte offset for CSV / JSONL, a part count for Parquet). The batch job commits that position,
so a resumed run truncates whatever a killed run wrote after its last commit. Parquet chunks are
written as part files under ``OUTPUT.parts/`` and combined into ``OUTPUT`` at the end (one
part in memory at a time); Parquet cannot be appended to in place.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputFileError

INPUT_COLUMNS = ("id", "answer", "rubric_id", "question", "reference")
OUTPUT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("rubric_id", pa.string()),
        ("score", pa.float64()),
        ("max_score", pa.float64()),
        ("coverage", pa.float64()),
        ("missing", pa.list_(pa.string())),
        ("flags", pa.list_(pa.string())),
        ("needs_review", pa.bool_()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)
OUTPUT_COLUMNS = tuple(OUTPUT_SCHEMA.names)
LIST_SEPARATOR = " | "
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
csv.field_size_limit(1 << 30)  # long answers are rejected per row by the grader's size limit, not here


def file_format(path: str | Path, role: str = "input") -> str:
    if str(path) == "-" and role == "input":
        return "jsonl"
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputFileError(
            f"{path}: unsupported {role} file type {Path(path).suffix or '(no extension)'!r}; "
            "use .csv, .jsonl (or .ndjson) or .parquet" + (", or - for JSONL on stdin" if role == "input" else ""),
            field=role,
        )
    return fmt


def content_identity(path: str | Path) -> str:
    """sha256 of the file's bytes: a resumed run must read exactly the file the first run read."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:32]


# -- reading -------------------------------------------------------------------------------------


class AnswerFile:
    """An input file opened for chunked reading; construction checks it is readable and has ``answer``."""

    def __init__(self, path: str | Path, stdin: BinaryIO | None = None) -> None:
        self.path = str(path)
        self.format = file_format(path)
        self._stdin = stdin
        if self.path != "-":
            if not Path(self.path).is_file():
                raise InputFileError(f"{self.path}: no such input file", field="input")
            self._check_columns()

    def count_rows(self) -> int | None:
        """Rows in the file (one cheap pass; the Parquet footer), or None for stdin."""
        if self.path == "-":
            return None
        if self.format == "parquet":
            return pq.ParquetFile(self.path).metadata.num_rows
        if self.format == "jsonl":
            with open(self.path, "rb") as fh:
                return sum(1 for line in fh if line.strip())
        return sum(1 for _ in self._csv_records(skip=0))  # the reader's own idea of a row, broken ones included

    def chunks(self, size: int, skip: int = 0) -> Iterator[pd.DataFrame]:
        """DataFrames of up to ``size`` rows with ``row`` (1-based), the input columns and ``read_error``."""
        records = {"csv": self._csv_records, "jsonl": self._jsonl_records, "parquet": self._parquet_records}[self.format]
        columns = ["row", *INPUT_COLUMNS, "read_error"]
        batch: list[dict] = []
        for record in records(skip):
            batch.append(record)
            if len(batch) == size:
                # object dtype: pandas' Arrow strings would reject the surrogate-escaped bad bytes
                yield pd.DataFrame(batch, columns=columns, dtype=object)
                batch = []
        if batch:
            yield pd.DataFrame(batch, columns=columns, dtype=object)

    # -- per format --------------------------------------------------------------------------------
    def _check_columns(self) -> None:
        if self.format == "csv":
            with self._open_text() as fh:
                try:
                    header = next(csv.reader(fh), None)
                except csv.Error as err:
                    raise InputFileError(f"{self.path}: not a readable CSV header ({err})", field="input") from None
            columns = [c.strip() for c in header or []]
        elif self.format == "parquet":
            try:
                columns = pq.ParquetFile(self.path).schema_arrow.names
            except (pa.ArrowException, OSError) as err:
                raise InputFileError(f"{self.path}: not a readable Parquet file ({err})", field="input") from None
        else:
            return  # JSONL rows carry their own fields; a row without ``answer`` becomes an error row
        if "answer" not in columns:
            found = ", ".join(repr(c) for c in columns[:20]) or "none"
            raise InputFileError(
                f"{self.path}: no 'answer' column (columns found: {found}); "
                "the file needs an 'answer' column holding the text to grade",
                field="answer",
            )

    def _open_text(self) -> io.TextIOWrapper:
        # utf-8-sig drops a BOM; surrogateescape keeps bad bytes so only their value errors.
        return open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def _csv_records(self, skip: int) -> Iterator[dict]:
        with self._open_text() as fh:
            reader = csv.reader(fh)
            header = [c.strip() for c in next(reader)]
            width = len(header)
            row = 0
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    fields, error = None, f"line {reader.line_num}: unreadable CSV record ({err})"
                else:
                    if not fields:
                        continue  # a blank line is not a row
                    error = None
                    if len(fields) != width:
                        error = (
                            f"line {reader.line_num}: {len(fields)} fields where the header has {width}; "
                            "quote values that contain commas or line breaks"
                        )
                row += 1
                if row <= skip:
                    continue
                values = dict(zip(header, fields or ()))
                yield _record(row, values, error)

    def _jsonl_records(self, skip: int) -> Iterator[dict]:
        fh = (self._stdin or sys.stdin.buffer) if self.path == "-" else open(self.path, "rb")
        try:
            row = 0
            for line_no, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                row += 1
                if row <= skip:
                    continue
                text = raw.decode("utf-8", errors="surrogateescape")
                if line_no == 1:
                    text = text.removeprefix("\ufeff")
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as err:
                    yield _record(row, {}, f"line {line_no}: not valid JSON ({err.msg} at column {err.colno})")
                    continue
                if not isinstance(value, dict):
                    kind = type(value).__name__
                    yield _record(row, {}, f"line {line_no}: expected a JSON object with an 'answer' field, got {kind}")
                    continue
                error = None if "answer" in value else f"line {line_no}: no 'answer' field"
                yield _record(row, value, error)
        finally:
            if self.path != "-":
                fh.close()

    def _parquet_records(self, skip: int) -> Iterator[dict]:
        source = pq.ParquetFile(self.path)
        columns = [c for c in INPUT_COLUMNS if c in source.schema_arrow.names]
        row = 0
        for batch in source.iter_batches(batch_size=4096, columns=columns):
            for values in batch.to_pylist():
                row += 1
                if row > skip:
                    yield _record(row, values, None)


def _record(row: int, values: dict, error: str | None) -> dict:
    record = {name: values.get(name) for name in INPUT_COLUMNS}
    for name in ("id", "rubric_id", "question", "reference"):
        if record[name] == "":
            record[name] = None  # an empty CSV cell means "not given"
    if record["id"] is not None:
        record["id"] = str(record["id"])
    record["row"] = row
    record["read_error"] = error
    return record


# -- writing -------------------------------------------------------------------------------------


class ResultWriter(Protocol):
    path: Path

    def write(self, frame: pd.DataFrame) -> int: ...

    def finish(self) -> None: ...


def partial_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


class _AppendingWriter:
    """CSV / JSONL: append encoded chunks to ``OUTPUT.partial``; the position is its byte length."""

    def __init__(self, output: Path, position: int) -> None:
        self.path = output
        self._partial = partial_path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        if position and not self._partial.exists() and output.exists():
            os.replace(output, self._partial)  # killed between the final rename and recording "done"
        if position and (not self._partial.exists() or self._partial.stat().st_size < position):
            raise InputFileError(
                f"cannot resume: {self._partial} is missing or shorter than the committed progress; "
                "run again without --resume to grade from the start",
                field="output",
            )
        self._fh = open(self._partial, "r+b" if position else "wb")
        self._fh.truncate(position)  # drop a chunk a killed run wrote but never committed
        self._fh.seek(position)

    def write(self, frame: pd.DataFrame) -> int:
        self._fh.write(self._encode(frame, header=self._fh.tell() == 0))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return self._fh.tell()

    def finish(self) -> None:
        if self._fh.tell() == 0:
            self._fh.write(self._encode(pd.DataFrame(columns=list(OUTPUT_COLUMNS)), header=True))
        self._fh.close()
        os.replace(self._partial, self.path)

    def _encode(self, frame: pd.DataFrame, header: bool) -> bytes:
        raise NotImplementedError


class CsvWriter(_AppendingWriter):
    def _encode(self, frame: pd.DataFrame, header: bool) -> bytes:
        frame = frame.copy()
        for name in ("missing", "flags"):
            frame[name] = [LIST_SEPARATOR.join(v) for v in frame[name]]
        return frame.to_csv(index=False, header=header, lineterminator="\n").encode("utf-8")


class JsonlWriter(_AppendingWriter):
    def _encode(self, frame: pd.DataFrame, header: bool) -> bytes:
        if frame.empty:
            return b""
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
        return (text if text.endswith("\n") else text + "\n").encode("utf-8")


class ParquetWriter:
    """One part file per chunk under ``OUTPUT.parts/``, streamed into ``OUTPUT`` by ``finish``."""

    def __init__(self, output: Path, position: int) -> None:
        self.path = output
        self._parts = output.with_name(output.name + ".parts")
        self._count = position
        self._parts.mkdir(parents=True, exist_ok=True)
        for part in self._parts.glob("part-*.parquet"):
            if int(part.stem.split("-")[1]) >= position:
                part.unlink()  # written by a killed run after its last commit
        missing = [i for i in range(position) if not self._part(i).exists()]
        if missing:
            raise InputFileError(
                f"cannot resume: part {missing[0]} of {self._parts} is gone; run again without --resume",
                field="output",
            )

    def _part(self, index: int) -> Path:
        return self._parts / f"part-{index:06d}.parquet"

    def write(self, frame: pd.DataFrame) -> int:
        table = pa.Table.from_pandas(frame, schema=OUTPUT_SCHEMA, preserve_index=False)
        tmp = self._parts / "part.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self._part(self._count))
        self._count += 1
        return self._count

    def finish(self) -> None:
        partial = partial_path(self.path)
        with pq.ParquetWriter(partial, OUTPUT_SCHEMA) as writer:
            for i in range(self._count):
                writer.write_table(pq.read_table(self._part(i), schema=OUTPUT_SCHEMA))
        os.replace(partial, self.path)
        shutil.rmtree(self._parts)


def open_writer(output: Path, position: int = 0) -> ResultWriter:
    """A writer for ``output`` by extension, continuing after ``position`` (0 = start afresh)."""
    fmt = file_format(output, role="output")
    if fmt == "parquet":
        return ParquetWriter(output, position)
    return (CsvWriter if fmt == "csv" else JsonlWriter)(output, position)


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a whole result file back (tests, small files); lists are lists in every format."""
    fmt = file_format(path, role="output")
    if fmt == "parquet":
        return pq.read_table(path).to_pandas()
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, dtype={"id": str, "rubric_id": str})
    numeric = {name: [""] for name in ("score", "max_score", "coverage", "needs_review")}
    frame = pd.read_csv(path, dtype={"id": str, "rubric_id": str, "error": str}, keep_default_na=False, na_values=numeric)
    for name in ("missing", "flags"):
        frame[name] = [v.split(LIST_SEPARATOR) if v else [] for v in frame[name]]
    frame["error"] = frame["error"].replace("", None)
    return frame
