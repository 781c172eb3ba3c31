"""One exception family, raised where input enters, with messages a person can act on.

The API maps these to 4xx JSON in one handler and the CLI to exit code 2 in one place.
"""

from __future__ import annotations

import importlib


class GraderError(Exception):
    """Base of every error caused by the caller's input (never by a bug of ours)."""

    status_code = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class RubricError(GraderError):
    """A rubric file or object is malformed; the message names the file, the field and the problem."""


class UnknownRubric(GraderError):
    """A rubric id that is neither in the rubrics directory/store nor a readable file."""

    status_code = 404


class UnknownResult(GraderError):
    """A result id that the store does not hold."""

    status_code = 404


class ReviewError(GraderError):
    """A review that does not fit its result: a score outside 0..max_score, an unknown key point id."""


class AnswerError(GraderError):
    """An answer cannot be graded: empty, not UTF-8, too long, or not text."""


class AnswerTooLarge(AnswerError):
    status_code = 413


class InputFileError(GraderError):
    """A batch or data file cannot be read at all (a bad row is not this: it becomes an error row)."""


class MissingExtra(GraderError):
    """An optional feature whose extra is not installed; the message names the ``pip install`` that adds it."""

    @classmethod
    def require(cls, extra: str, modules: tuple[str, ...], feature: str, field: str | None = None) -> None:
        """Import ``modules`` now, so a missing extra fails early with the install command, not deep inside."""
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError as err:
                raise cls(
                    f"{feature} needs the {extra} extra, which is not installed here ({err.name or name} is missing): "
                    f'pip install "answer-grader[{extra}]" (in a source checkout: pip install -e ".[{extra}]")',
                    field=field,
                ) from None
