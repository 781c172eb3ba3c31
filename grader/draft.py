"""Draft a rubric from a reference answer: its sentences and bullets become key points.

Used by ``grader rubric draft`` and by batch / eval rows that carry a reference instead of a
rubric id, so a drafted rubric is the same whichever way it was asked for.
"""

from __future__ import annotations

import hashlib
import re

from .rubric import Rubric, parse_rubric
from .segment import segment_answer

MIN_KEY_POINT_WORDS = 4  # shorter fragments ("Yes.", "e.g. a stack") join their neighbour
MAX_KEY_POINTS = 12


def _slug(text: str, taken: set[str]) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2][:4] or ["point"]
    base = "-".join(words)[:40].strip("-")
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def draft_rubric(question: str, reference: str, rubric_id: str | None = None, max_score: float = 5.0) -> Rubric:
    """A rubric whose key points are the reference answer's statements, equally weighted."""
    pieces: list[str] = []
    for clause in segment_answer(reference):
        text = clause.text.strip()
        if pieces and len(text.split()) < MIN_KEY_POINT_WORDS:
            pieces[-1] = f"{pieces[-1]} {text}"
        elif not pieces or len(pieces[-1].split()) >= MIN_KEY_POINT_WORDS:
            pieces.append(text)
        else:
            pieces[-1] = f"{pieces[-1]} {text}"
    if len(pieces) > MAX_KEY_POINTS:  # merge neighbours so the rubric stays readable
        size = -(-len(pieces) // MAX_KEY_POINTS)
        pieces = [" ".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]
    if not pieces:
        pieces = [reference.strip() or question.strip()]
    taken: set[str] = set()
    digest = hashlib.sha256(f"{question}\n{reference}".encode()).hexdigest()[:8]
    return parse_rubric(
        {
            "id": rubric_id or f"draft-{digest}",
            "question": question.strip() or "(no question given)",
            "max_score": max_score,
            "key_points": [{"id": _slug(p, taken), "text": p} for p in pieces],
        },
        source="drafted rubric",
    )
