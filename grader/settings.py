"""All configuration in one place: `GRADER_*` environment variables or a `.env` file.

Built once (``get_settings``) and passed down; no other module reads ``os.environ``.
Thresholds live here with the reason for their value, not as literals in the code.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_rubrics_dir() -> Path:
    # The shipped rubrics sit beside the package in a source checkout (`pip install -e .`).
    return PROJECT_ROOT / "rubrics"


class Thresholds(BaseSettings):
    """Similarity thresholds of the matcher; part of every fingerprint.

    Values are cosine similarities of all-MiniLM-L6-v2 embeddings, chosen on the shipped
    example answers (eval/data/ml_interview): paraphrases of one statement land at 0.55-0.85,
    related statements about the same topic at 0.3-0.5, unrelated text below 0.15.
    """

    model_config = SettingsConfigDict(env_prefix="GRADER_", env_file=".env", extra="ignore")

    covered_threshold: float = Field(0.58, description="similarity at or above which a key point is covered")
    partial_threshold: float = Field(0.40, description="similarity at or above which a key point is partial")
    contradiction_threshold: float = Field(
        0.50, description="a negating clause or a listed contradiction this similar can contradict a key point"
    )
    contradiction_margin: float = Field(
        0.05, description="a denial stands unless the key point is supported elsewhere by more than this"
    )
    question_restated_threshold: float = Field(
        # 0.80 zeroed 121 Mohler answers that restate the question *and* answer it ("C++ programs begin
        # execution at main", human 4.4/5); 0.90 raised Pearson on Mohler and SAF alike (eval/REPORT.md);
        # 0.95 frees five more ("The base case for a recursive implementation of merge sort is one.", human
        # 4.5/5 on average): Mohler transfer 0.600 -> 0.608, cv 0.568 -> 0.585, SAF unchanged.
        0.95, description="a clause this similar to the question restates it and earns nothing"
    )
    off_topic_threshold: float = Field(
        0.25, description="an answer whose best similarity to question and key points is below this is off-topic"
    )
    off_topic_min_words: int = Field(
        # Mohler's 71 off-topic answers included 33 of one to three words ("logn", "static and dynamic"),
        # graded 3.2 of 5 on average; zeroing only longer ones raised Mohler transfer 0.590 -> 0.602.
        4, ge=1, description="an answer needs this many words to be judged off-topic (shorter ones go to review)"
    )
    misconception_threshold: float = Field(0.62, description="similarity at which a misconception counts as stated")
    keyword_list_credit: float = Field(0.35, description="most credit a bare list of terms can earn for a key point")

    @model_validator(mode="after")
    def _ordered(self) -> "Thresholds":
        if not 0 < self.partial_threshold < self.covered_threshold <= 1:
            raise ValueError(
                "thresholds must satisfy 0 < partial_threshold < covered_threshold <= 1, got "
                f"partial={self.partial_threshold}, covered={self.covered_threshold}"
            )
        return self


class Settings(BaseSettings):
    """Service, CLI and library settings. Every field can be set as ``GRADER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GRADER_", env_file=".env", extra="ignore")

    model_path: Path | None = Field(
        None, description="a local sentence-transformers model directory; default: the packaged all-MiniLM-L6-v2"
    )
    rubrics_dir: Path = Field(default_factory=_default_rubrics_dir)
    database_url: str = Field("sqlite:///grader.db", description="SQLAlchemy URL of the store")
    score_mapping: str = Field(
        "evidence",
        description="how key-point evidence becomes a score: 'evidence' (the shipped fitted mapping, "
        "grader/mappings/evidence.json), 'linear' (weighted coverage x max_score), or the path of a mapping file",
    )
    calibration_path: Path | None = Field(
        None, description="a calibration artefact (JSON) mapping coverage to the score scale; none = linear"
    )
    review_calibrations: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="review calibration artefacts (`grader calibrate --from-reviews`), comma-separated paths: one "
        "global and / or one per rubric (a rubric's own wins for it); they refit the evidence mapping's curve and "
        "pull an answer towards its reviewed neighbours, before the guards' hard effects",
    )
    max_impact_results: int = Field(
        2000, ge=1, description="most stored results a calibration impact (POST /v1/rubrics/{id}/impact) regrades"
    )
    encode_batch_size: int = Field(64, ge=1, le=4096)
    encoder_lanes: int = Field(
        2, ge=1, le=64, description="answers the torch backend reads at once (1: one after another)"
    )
    pass_threads: int = Field(
        0, ge=0, le=256, description="threads of every torch pass, whatever the load (0: torch's own count; 1 with "
        "a lane per core reads the most answers per second, each a little slower)"
    )
    max_answer_chars: int = Field(20_000, ge=1, description="longer answers are rejected (413 / error row)")
    too_long_words: int = Field(400, ge=1, description="answers with more words are graded but flagged too_long")
    max_clauses: int = Field(400, ge=1, description="answers are graded on at most this many clauses")
    review_confidence: float = Field(0.5, ge=0, le=1, description="results below this confidence need review")
    embedding_cache_size: int = Field(256, ge=0, description="rubric versions whose key-point embeddings stay cached")
    # HTTP service
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API keys allowed to write (rubrics, reviews): comma-separated 'name:key' pairs in the environment; "
        "a bare key is named by its position (key-1, key-2, ...). Reviews record the name, never the key",
    )
    require_api_key: bool = Field(
        False,
        description="every API endpoint, grading and reading included, needs an API key (for a service exposed "
        "beyond a trusted network); /healthz, /metrics and the static pages stay open",
    )
    max_batch_answers: int = Field(64, ge=1, description="most answers in one POST /v1/grade/batch")
    max_body_bytes: int = Field(1_000_000, ge=1024)
    microbatch_window_ms: float = Field(
        0.0,
        ge=0,
        description="how long the model's thread waits for more answers after the first; every text gets a forward "
        "pass of its own (a grade must not depend on batch-mates), so waiting saves no model time and 0 only takes "
        "what is already queued",
    )
    microbatch_max_size: int = Field(64, ge=1)
    max_upload_bytes: int = Field(
        500_000_000, ge=1024, description="body limit for uploads to /v1/jobs (answer files); other routes: max_body_bytes"
    )
    jobs_dir: Path | None = Field(
        None,
        description="where API batch jobs keep input and result files; default: beside the SQLite database. "
        "Workers on several machines need it on shared storage",
    )
    job_lease_seconds: float = Field(
        60.0, ge=2, description="a worker renews its claim on a running job this often x3; a dead worker's job is resumed after it"
    )
    min_reviews_to_calibrate: int = Field(
        30, ge=5, description="grader calibrate --from-reviews refuses to fit on fewer reviewed results than this"
    )

    thresholds: Thresholds = Field(default_factory=Thresholds)

    @property
    def mapping_path(self) -> Path:
        """The mapping file ``score_mapping`` names (only meaningful when it is not 'linear')."""
        from .mapping import SHIPPED_PATH

        return SHIPPED_PATH if self.score_mapping == "evidence" else Path(self.score_mapping)

    @field_validator("review_calibrations", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):  # GRADER_REVIEW_CALIBRATIONS=a.json,b.json
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        # GRADER_API_KEYS=alice:key1,bob:key2 (a JSON list works too).
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _named_uniquely(cls, value: list[str]) -> list[str]:
        named_api_keys(value)  # raises on a duplicate name or an empty key
        return value

    def key_names(self) -> dict[str, str]:
        """API key -> its name (what a review records as its reviewer)."""
        return {key: name for name, key in named_api_keys(self.api_keys).items()}

    # Encoder backend (see benchmarks/results/encoders.md for the speed and agreement of each)
    backend: Literal["torch", "onnx"] = Field(
        "torch", description="torch: sentence-transformers fp32; onnx: 8-bit ONNX export of the same model (onnx extra)"
    )
    span_vectors: Literal["pooled", "separate"] = Field(
        # pooled is about 6x faster per answer, holds every attack row and is level on agreement (eval/SPANS.md).
        "pooled",
        description="separate: every clause, window and the whole answer is encoded on its own; pooled: each "
        "answer's clauses are read in one packed pass, each attending only to itself, and windows and the whole "
        "answer are the mean of their clauses' word pieces",
    )
    onnx_cache_dir: Path | None = Field(
        None, description="where the ONNX export is cached; default: the per-user cache dir (answer-grader)"
    )


KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}$")


def named_api_keys(entries: list[str]) -> dict[str, str]:
    """``["alice:k1", "k2"]`` -> ``{"alice": "k1", "key-2": "k2"}``: a bare key is named by its 1-based position.

    An entry is ``name:key`` when the part before the first ``:`` is a plain name (letters, digits, ``_.@-``);
    anything else is a bare key, so existing keys keep working.
    """
    named: dict[str, str] = {}
    for position, entry in enumerate(entries, start=1):
        name, sep, key = entry.partition(":")
        if not (sep and key and KEY_NAME.match(name)):
            name, key = f"key-{position}", entry
        if not key.strip():
            raise ValueError(f"API key {position} ({name!r}) is empty")
        if name in named:
            raise ValueError(f"API key name {name!r} is used twice; give every key its own name (name:key)")
        named[name] = key
    return named


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
