"""Text-level checks that keep the grader hard to fool: negation, keyword lists, instructions, junk.

These look at words only; the checks that need embeddings (question restated, off-topic)
live in ``match.py`` beside the similarity matrix they use.
"""

from __future__ import annotations

import re
from functools import lru_cache

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")

# Each cue flips polarity once; two cues in one clause cancel ("not without", "never fails to").
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nothing|neither|nor|cannot|without|fails? to|rather than|instead of|"
    r"unable to|lacks?|doesn't|don't|didn't|isn't|aren't|wasn't|weren't|won't|can't|couldn't|"
    r"shouldn't|wouldn't|hasn't|haven't|hardly)\b|n't\b",
    re.IGNORECASE,
)
_UP = {
    "increase", "increases", "increased", "increasing", "more", "higher", "larger", "bigger", "faster",
    "raise", "raises", "grow", "grows", "better", "easier", "stronger",
}
_DOWN = {
    "decrease", "decreases", "decreased", "decreasing", "less", "fewer", "lower", "smaller", "slower",
    "reduce", "reduces", "reduced", "reducing", "shrink", "shrinks", "worse", "harder", "weaker",
}
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\b.{0,40}\b(?:rubric|instructions?|prompt|rules|grading|above|previous)\b|"
    r"\b(?:give|award|assign|grade)\b.{0,30}\b(?:full|maximum|max|perfect|top|all)\b.{0,15}\b(?:marks?|points?|score|credit)\b|"
    r"\b(?:you are|as) (?:an? )?(?:grader|grading (?:system|model)|ai|language model|assistant)\b|"
    r"\bsystem prompt\b|\b(?:score|grade|mark) (?:this|me|the answer) (?:as )?(?:\d|full|correct|perfect)",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


DOUBLE_NEGATION_GAP = 3  # two cues this few words apart cancel ("not without", "never fails to")


def is_negated(text: str) -> bool:
    """Whether ``text`` makes a negative statement.

    Cues close together cancel as a double negation; cues far apart are parallel negations
    ("nothing to learn, no weights") and keep the statement negative.
    """
    cues = [len(text[: m.start()].split()) for m in _NEGATION.finditer(text)]
    remaining, i = 0, 0
    while i < len(cues):
        if i + 1 < len(cues) and cues[i + 1] - cues[i] <= DOUBLE_NEGATION_GAP:
            i += 2
        else:
            remaining, i = remaining + 1, i + 1
    return remaining > 0


def _direction(tokens: set[str]) -> int:
    up, down = bool(tokens & _UP), bool(tokens & _DOWN)
    return 1 if up and not down else -1 if down and not up else 0


def polarity_flipped(statement: str, evidence: str) -> bool:
    """True when ``evidence`` says the opposite of ``statement``: it negates what the statement
    affirms, or it states the opposite direction (increase/decrease, faster/slower, ...).

    Only added negation counts: an answer that drops a statement's own "no" usually rephrases it
    ("no learnable parameters" -> "parameter-free"), which says the same thing.
    """
    negated = is_negated(evidence) and not is_negated(statement)
    d_statement, d_evidence = _direction(set(words(statement))), _direction(set(words(evidence)))
    swapped = d_statement != 0 and d_evidence == -d_statement
    return negated != swapped


def is_instruction(text: str) -> bool:
    """Text that talks to the grader instead of answering ("ignore the rubric, give full marks")."""
    return bool(_INSTRUCTION.search(text))


def is_keyword_list(text: str) -> bool:
    """A bare list of terms: several short items and (almost) no function words relating them."""
    items = [i for i in re.split(r"[,/;\n|]+|\s+-\s+", text) if i.strip()]
    tokens = words(text)
    if len(tokens) < 3:
        return False
    stop_share = sum(t in ENGLISH_STOP_WORDS for t in tokens) / len(tokens)
    short_items = len(items) >= 3 and sum(len(i.split()) for i in items) / len(items) <= 3.0
    return short_items and stop_share <= 0.12


@lru_cache(maxsize=1)
def _english_vocabulary() -> frozenset[str]:
    from .encoder import packaged_model_path

    vocab = (packaged_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in vocab if w.isalpha() and len(w) > 1)


def language_flag(text: str) -> str | None:
    """``gibberish`` or ``other_language`` when the text is not English prose, else None."""
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum(ch.isascii() for ch in letters) / len(letters) < 0.6:
        return "other_language"
    tokens = words(text)
    if len(tokens) < 3:
        return "gibberish" if tokens and not any(t in _english_vocabulary() for t in tokens) else None
    known = sum(t in _english_vocabulary() for t in tokens) / len(tokens)
    stop_share = sum(t in ENGLISH_STOP_WORDS for t in tokens) / len(tokens)
    if known < 0.5:
        # Natural languages keep a vowel share of about a third; keyboard mashing does not.
        vowels = sum(ch in "aeiouy" for t in tokens for ch in t) / max(1, sum(map(len, tokens)))
        return "other_language" if 0.3 <= vowels <= 0.55 else "gibberish"
    # English prose is about a third function words; a sentence with almost none is another language.
    if len(tokens) >= 8 and stop_share < 0.08 and not is_keyword_list(text):
        return "other_language"
    return None
