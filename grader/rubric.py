"""The rubric: the key points a good answer makes, as pydantic models, and loading them from YAML.

A rubric is immutable once loaded; its ``content_hash`` identifies exactly what was graded
against, so a stored grade can be reproduced and audited.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import RubricError, UnknownRubric

ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_VERSION = 2**31 - 1  # versions are stored as SQL INTEGER


class _Strict(BaseModel):
    # NaN / Infinity (which Python's JSON parser accepts) would make scores that cannot be serialized.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)


class KeyPoint(_Strict):
    """One thing a good answer must say, with other wordings and the statements that deny it."""

    id: str = Field(pattern=ID_PATTERN, max_length=80)
    text: str = Field(min_length=3, max_length=1000)
    weight: float = Field(1.0, gt=0, le=100)
    paraphrases: tuple[str, ...] = ()
    contradictions: tuple[str, ...] = ()
    required_terms: tuple[str, ...] = ()

    @field_validator("paraphrases", "contradictions", "required_terms")
    @classmethod
    def _no_blank_entries(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if any(not v.strip() for v in values):
            raise ValueError("entries must not be empty")
        return values


class Misconception(_Strict):
    """A wrong statement that costs ``penalty`` points (on the max_score scale) when the answer makes it."""

    text: str = Field(min_length=3, max_length=1000)
    penalty: float = Field(1.0, gt=0)


class Scoring(_Strict):
    """``weighted``: coverage x max_score. ``count``: points by how many key points are covered."""

    mode: Literal["weighted", "count"] = "weighted"
    bands: dict[int, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bands_for_count(self) -> "Scoring":
        if self.mode == "count" and not self.bands:
            raise ValueError("mode 'count' needs bands, e.g. {3: 5, 2: 3, 1: 1}")
        return self


class Rubric(_Strict):
    """A question, its key points and how they add up to a score."""

    id: str = Field(pattern=ID_PATTERN, max_length=80)
    version: int = Field(1, ge=1, le=MAX_VERSION)
    question: str = Field(min_length=3, max_length=5000)
    max_score: float = Field(1.0, gt=0)
    key_points: tuple[KeyPoint, ...] = Field(min_length=1, max_length=50)
    misconceptions: tuple[Misconception, ...] = ()
    scoring: Scoring = Field(default_factory=Scoring)
    thresholds: dict[Literal["covered_threshold", "partial_threshold"], float] = Field(
        default_factory=dict, description="per-rubric overrides written by calibration / tuning"
    )

    @model_validator(mode="after")
    def _unique_key_point_ids(self) -> "Rubric":
        covered, partial = self.thresholds.get("covered_threshold", 1.0), self.thresholds.get("partial_threshold", 0.0)
        if not (0 <= partial < covered <= 1):
            raise ValueError(f"thresholds: need 0 <= partial_threshold < covered_threshold <= 1, got {self.thresholds}")
        seen: set[str] = set()
        for kp in self.key_points:
            if kp.id in seen:
                raise ValueError(f"duplicate key point id {kp.id!r}")
            seen.add(kp.id)
        for n, points in self.scoring.bands.items():
            if not 0 <= n <= len(self.key_points) or not 0 <= points <= self.max_score:
                raise ValueError(
                    f"scoring band {n}: {points} is outside 0..{len(self.key_points)} key points "
                    f"or 0..{self.max_score} points"
                )
        return self

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of everything that affects grading.

        Computed once per rubric object (it is frozen): grading asks for it several times per answer.
        """
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def model_copy(self, *, update=None, deep: bool = False) -> Rubric:
        """A copy whose content hash is computed afresh: ``update`` may change what it hashes."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("content_hash", None)
        return copy

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True)


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def parse_rubric(data: object, source: str = "rubric") -> Rubric:
    """Validate a rubric given as a mapping (from YAML, JSON or a request body)."""
    if not isinstance(data, dict):
        raise RubricError(f"{source}: expected a mapping with id, question and key_points, got {type(data).__name__}")
    try:
        return Rubric.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]["loc"]
        raise RubricError(f"{source}: {_describe(err)}", field=".".join(map(str, first)) or None) from None


def parse_rubric_text(raw: bytes | str, source: str = "rubric") -> Rubric:
    """Validate a rubric written as YAML (JSON is YAML too); problems name ``source``."""
    try:
        data = yaml.safe_load(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as err:
        raise RubricError(f"{source}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        raise RubricError(f"{source}: invalid YAML: {err}") from None
    except RecursionError:
        raise RubricError(f"{source}: invalid YAML: nested too deeply") from None
    return parse_rubric(data, source)


def load_rubric(path: str | Path) -> Rubric:
    """Read one YAML rubric file; every problem is reported with the file name."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UnknownRubric(f"{path}: cannot read rubric file ({err.strerror})") from None
    rubric = parse_rubric_text(raw, str(path))
    if path.stem != rubric.id:
        raise RubricError(f"{path}: id {rubric.id!r} does not match the file name {path.stem!r}", field="id")
    return rubric


def load_rubrics(directory: str | Path) -> dict[str, Rubric]:
    """Load every ``*.yaml`` / ``*.yml`` directly in ``directory``, keyed by id."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UnknownRubric(f"{directory}: rubrics directory does not exist")
    rubrics: dict[str, Rubric] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        rubric = load_rubric(path)
        if rubric.id in rubrics:
            raise RubricError(f"{path}: rubric id {rubric.id!r} is defined twice in {directory}", field="id")
        rubrics[rubric.id] = rubric
    return rubrics


def resolve_rubric(ref: str, rubrics_dir: str | Path) -> Rubric:
    """A rubric id from ``rubrics_dir``, or a path to a YAML file."""
    path = Path(ref)
    if path.suffix in {".yaml", ".yml"} or path.is_file():
        if not path.is_file():
            raise UnknownRubric(f"{ref}: no such rubric file")
        return load_rubric(path)
    candidate = Path(rubrics_dir) / f"{ref}.yaml"
    if candidate.is_file():
        return load_rubric(candidate)
    known = sorted(p.stem for p in Path(rubrics_dir).glob("*.yaml")) if Path(rubrics_dir).is_dir() else []
    hint = f" Known ids: {', '.join(known[:30])}" if known else f" ({rubrics_dir} holds no rubrics)"
    raise UnknownRubric(f"unknown rubric {ref!r}.{hint}")
