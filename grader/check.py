"""Rubric lint: key points too alike to be told apart, and key points that only restate the question."""

from __future__ import annotations

from dataclasses import dataclass

from .encoder import Encoder
from .match import RubricVectors, rubric_texts
from .rubric import Rubric

OVERLAP_SIMILARITY = 0.80  # above this two key points draw on the same answers
QUESTION_COPY_SIMILARITY = 0.85  # above this a key point is credited for restating the question


@dataclass(frozen=True)
class RubricWarning:
    rubric_id: str
    key_points: tuple[str, ...]
    similarity: float
    problem: str

    def __str__(self) -> str:
        return f"{self.rubric_id}: {', '.join(self.key_points)}: {self.problem} (similarity {self.similarity:.2f})"


def check_rubrics(rubrics: list[Rubric], encoder: Encoder) -> list[RubricWarning]:
    """Warnings for every rubric, computed from one encode call."""
    texts = list(dict.fromkeys(t for r in rubrics for t in rubric_texts(r)))
    vectors = encoder.encode(texts)
    row = {t: i for i, t in enumerate(texts)}
    warnings = []
    for rubric in rubrics:
        rv = RubricVectors.from_embeddings(rubric, vectors[[row[t] for t in rubric_texts(rubric)]])
        kps = rubric.key_points
        for i in range(len(kps)):
            for j in range(i + 1, len(kps)):
                sim = float(rv.key_point_similarity[i, j])
                if sim >= OVERLAP_SIMILARITY:
                    warnings.append(
                        RubricWarning(rubric.id, (kps[i].id, kps[j].id), sim, "key points too similar to tell apart")
                    )
        for kp, sim in zip(kps, rv.question_similarity):
            if sim >= QUESTION_COPY_SIMILARITY:
                warnings.append(RubricWarning(rubric.id, (kp.id,), float(sim), "key point restates the question"))
    return warnings
