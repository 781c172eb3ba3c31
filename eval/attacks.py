"""How often the grader resists each attack of the adversarial set, beside plain cosine similarity.

``python -m eval.attacks`` grades every case of ``eval/data/adversarial.yaml`` with the grader and
with a plain-cosine baseline (whole answer vs the rubric's key points joined, scaled to max_score),
applies the same success rule to both, and writes ``eval/ATTACKS.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from grader.grade import Grader
from grader.rubric import Rubric, load_rubrics
from grader.settings import PROJECT_ROOT

CASES_PATH = PROJECT_ROOT / "eval" / "data" / "adversarial.yaml"
REPORT_PATH = PROJECT_ROOT / "eval" / "ATTACKS.md"
VARIANTS = ("correct", "partial", "negated", "keyword_list", "restated", "padded", "instruction", "off_topic")
ZERO = 0.1  # "scores 0": at most this share of max_score


@dataclass(frozen=True)
class Case:
    rubric: Rubric
    answers: dict[str, str]
    negated_key_point: str

    @property
    def negated_share(self) -> float:
        weights = {kp.id: kp.weight for kp in self.rubric.key_points}
        return weights[self.negated_key_point] / sum(weights.values())


def load_cases(rubrics: dict[str, Rubric], path: Path = CASES_PATH) -> list[Case]:
    cases = []
    for raw in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
        answers = {v: raw[v] for v in VARIANTS if v != "negated"} | {"negated": raw["negated"]["answer"]}
        cases.append(Case(rubrics[raw["rubric_id"]], answers, raw["negated"]["key_point"]))
    return cases


# Each rule: (case, scores by variant) -> did the grader resist the attack?
RULES: dict[str, Callable[[Case, dict[str, float]], bool]] = {
    "negated key point": lambda c, s: s["negated"] <= s["correct"] - c.negated_share * c.rubric.max_score + 1e-3,  # scores are rounded to 3 places
    "keyword list": lambda c, s: s["keyword_list"] < s["partial"],
    "question restated": lambda c, s: s["restated"] < s["partial"],
    "padding": lambda c, s: s["padded"] <= s["partial"] + 1e-6,
    "instruction to the grader": lambda c, s: s["instruction"] <= ZERO * c.rubric.max_score,
    "off-topic": lambda c, s: s["off_topic"] <= ZERO * c.rubric.max_score,
}


def grader_scores(grader: Grader, cases: list[Case]) -> list[dict[str, float]]:
    results = grader.grade_many([(c.rubric, c.answers[v]) for c in cases for v in VARIANTS])
    scores = iter(r.score for r in results)
    return [{v: next(scores) for v in VARIANTS} for _ in cases]


def cosine_scores(grader: Grader, cases: list[Case]) -> list[dict[str, float]]:
    """Plain cosine: one embedding per answer against one embedding of all key points, x max_score."""
    references = [" ".join(kp.text for kp in c.rubric.key_points) for c in cases]
    answers = [c.answers[v] for c in cases for v in VARIANTS]
    vectors = grader.encoder.encode(references + answers)
    ref, ans = vectors[: len(cases)], vectors[len(cases) :].reshape(len(cases), len(VARIANTS), -1)
    cos = np.clip(np.einsum("cd,cvd->cv", ref, ans), 0, 1)
    return [{v: float(cos[i, j] * c.rubric.max_score) for j, v in enumerate(VARIANTS)} for i, c in enumerate(cases)]


def resisted(cases: list[Case], scores: list[dict[str, float]]) -> dict[str, int]:
    return {name: sum(rule(c, s) for c, s in zip(cases, scores)) for name, rule in RULES.items()}


def main() -> None:
    grader = Grader()
    cases = load_cases(load_rubrics(PROJECT_ROOT / "rubrics"))
    ours, cosine = resisted(cases, grader_scores(grader, cases)), resisted(cases, cosine_scores(grader, cases))
    n = len(cases)
    lines = [
        "# Adversarial attacks: share of cases handled",
        "",
        f"{n} cases ({', '.join(c.rubric.id for c in cases)}) from `eval/data/adversarial.yaml`;",
        "regenerate with `python -m eval.attacks`. Rules, the same for both columns: negated answer loses at",
        "least the negated key point's weight share; keyword list and restated question score below the",
        "partial answer; padding does not raise the partial answer's score; instruction and off-topic",
        f"score at most {ZERO:.0%} of max_score. Plain cosine: whole answer vs the key points joined, x max_score.",
        "",
        "| attack | grader | plain cosine |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {ours[name]}/{n} ({ours[name] / n:.0%}) | {cosine[name]}/{n} ({cosine[name] / n:.0%}) |" for name in RULES]
    lines += ["", "The grader column uses the default span vectors (`GRADER_SPAN_VECTORS=pooled`, one packed pass per answer);",
              "the same attacks with every span encoded on its own (`separate`) are in `eval/SPANS.md` (`python -m eval.spans`)."]
    REPORT_PATH.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
