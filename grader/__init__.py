"""Embedding-based answer grading: rubric key points vs clauses of a free-text answer."""

__version__ = "0.1.0"
