"""Request and response bodies of the HTTP API; results reuse the library's own models.

Everything a client sends is validated here (types, unknown fields) or by the library at its
boundary (answer size and content, rubric content), so routes receive clean values.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from grader.result import GradeResult
from grader.review import Review
from grader.rubric import ID_PATTERN, MAX_VERSION, Rubric

EXAMPLE_ANSWER = (
    "Batch normalization normalizes each layer's activations to zero mean and unit variance using the "
    "statistics of the current mini-batch, then applies a learned scale and shift. It lets us use higher "
    "learning rates and makes training faster and more stable."
)
EXAMPLE_RUBRIC = {
    "id": "overfitting",
    "question": "What is overfitting and how can you reduce it?",
    "max_score": 2,
    "key_points": [
        {"id": "definition", "text": "The model fits noise in the training data and generalizes poorly to new data."},
        {"id": "remedies", "text": "Regularization, more data, early stopping or a simpler model reduce it."},
    ],
}


class ErrorBody(BaseModel):
    type: str = Field(description="machine-readable kind, e.g. validation_error, unknown_rubric, payload_too_large")
    message: str = Field(description="what is wrong and how to fix it, for a person")
    field: str | None = Field(None, description="the request field at fault, dotted (e.g. rubric.key_points.0.text)")


class ErrorResponse(BaseModel):
    error: ErrorBody


class GradeRequest(BaseModel):
    """One answer and the rubric to grade it against: a stored ``rubric_id`` or an inline ``rubric``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"rubric_id": "batch-normalization", "answer": EXAMPLE_ANSWER}]},
    )

    rubric_id: str | None = Field(None, max_length=200, description="id of a stored rubric (see GET /v1/rubrics)")
    rubric_version: int | None = Field(None, ge=1, le=MAX_VERSION, description="a specific stored version; default: the latest")
    rubric: Rubric | None = Field(None, description="an inline rubric, instead of rubric_id; not stored")
    answer: str = Field(description="the candidate's free-text answer (UTF-8)")


class GradeResponse(GradeResult):
    id: str = Field(description="id of the stored result: GET /v1/results/{id}")


class BatchGradeRequest(BaseModel):
    """Up to ``GRADER_MAX_BATCH_ANSWERS`` grade requests, graded together."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"rubric_id": "batch-normalization", "answer": EXAMPLE_ANSWER},
                        {"rubric": EXAMPLE_RUBRIC, "answer": "It memorizes noise; use regularization."},
                    ]
                }
            ]
        },
    )

    # Items are validated one by one in the route, so a malformed item becomes that item's error
    # instead of failing the whole request; the schema still documents them as GradeRequests.
    items: list[Any] = Field(
        min_length=1,
        json_schema_extra={"items": {"$ref": "#/components/schemas/GradeRequest"}},
        description="grade requests; each is answered in place, a bad one gets an error",
    )


class BatchItemResult(BaseModel):
    index: int = Field(description="position of the item in the request")
    result: GradeResponse | None = None
    error: ErrorBody | None = None


class BatchGradeResponse(BaseModel):
    results: list[BatchItemResult] = Field(description="one entry per item, in request order")
    graded: int
    failed: int


class RubricBody(Rubric):
    """A rubric to store, as GET returns it; ``id`` may be left out (the path names it) and ``version`` is
    ignored (the store assigns the next one)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RUBRIC]})

    id: str | None = Field(None, pattern=ID_PATTERN, max_length=80)  # type: ignore[assignment]


class RubricList(BaseModel):
    rubrics: list[Rubric] = Field(description="the latest version of every rubric that is not deleted")


class RubricVersions(BaseModel):
    rubric_id: str
    versions: list[int] = Field(description="every stored version, oldest first; each stays readable")


class StoredResult(GradeResponse):
    answer: str = Field(description="the answer as it was graded")
    review: Review | None = Field(
        None, description="the latest human review (null when none); the machine grade above is never changed by it"
    )


class ReviewHistory(BaseModel):
    result_id: str
    reviews: list[Review] = Field(description="every review of the result, oldest first; the last one counts")


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when the model worker or the store is down")
    model: str
    model_loaded: bool
    store: bool
    queue_depth: int
