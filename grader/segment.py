"""Split an answer into clauses with character offsets, so evidence can point into the original text.

Boundaries, in order: line breaks (not one that only wraps a sentence) and bullets, sentence ends,
semicolons, and, in long sentences only, conjunctions that join two statements (", and", ", but",
"whereas", ...; after "it is not true that", contrasts only). Pieces too short to state anything are
merged into their neighbour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .guards import untrue_propositions


@dataclass(frozen=True, slots=True)
class Clause:
    """A span of the answer: ``answer[start:end] == text``.

    ``after_repeat`` marks a clause that follows a dropped repeat (see ``distinct_clauses``): it was
    not next to the clause before it in what the answer says, so no window joins the two.
    """

    text: str
    start: int
    end: int
    after_repeat: bool = False


_LINE = re.compile(r"[^\n\r]+")
_BULLET = re.compile(r"^\s*(?:[-*•·–—>▪◦●○■□◆]+|o(?=\t| {2})|\(?\d{1,2}[.)]|\(?[a-zA-Z][.)](?=\s))\s*")
# A sentence ends at . ! ? (and closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_SEMICOLON = re.compile(r"\s*;\s*")
_CONTRAST = re.compile(
    r",\s+(?:but|while|whereas|although|though|however)\b\s*|\s+(?:whereas|but also|but|while)\s+", re.IGNORECASE
)
_CONJUNCTION = re.compile(rf",\s+(?:and|so|which|because)\b\s*|{_CONTRAST.pattern}", re.IGNORECASE)
# "It is not true that A, so B" denies the whole sentence, not only A: after such an opening only a contrast
# ("..., but B") starts a clause of its own; otherwise B would stand as an undenied statement.
DENIAL_OPENING_WORDS = 8  # words up to the proposition: "It is not true that", "Contrary to that, it is a myth that"
_ABBREVIATIONS = {"e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "fig.", "eq.", "dr.", "mr.", "ms.", "al.", "resp."}
# A line break inside a sentence is a wrap, not a boundary: pasted or hard-wrapped text breaks lines at a
# width, and a clause cut there ("L1 never makes them" / "exactly zero") no longer says what it said. A
# break is a wrap when the line does not end a sentence, the next is no list item, and the sentence visibly
# goes on: the line ends in a comma, or it is as long as wrapped text and the next starts in lower case.
# Short lines stay clauses ("gathering network statistics" / "discovering the topology" is a list).
WRAPPED_LINE_CHARS = 50
LONG_SENTENCE_WORDS = 14  # only sentences longer than this are split at conjunctions
MIN_CLAUSE_WORDS = 3  # shorter pieces are merged into the previous clause


def _words(text: str) -> int:
    return len(text.split())


def _split(text: str, start: int, pattern: re.Pattern[str], keep=None) -> list[tuple[int, int]]:
    """Spans of ``text`` (offset by ``start``) between matches of ``pattern``."""
    spans, pos = [], 0
    for m in pattern.finditer(text):
        if keep is not None and not keep(text, m):
            continue
        spans.append((start + pos, start + m.start()))
        pos = m.end()
    spans.append((start + pos, start + len(text)))
    return spans


def _denied_whole(sentence: str) -> bool:
    """Whether the sentence opens by calling what follows untrue (``guards.untrue_propositions``)."""
    return any(_words(sentence[:start]) <= DENIAL_OPENING_WORDS for start in untrue_propositions(sentence))


def _wrapped(line: str, following: str) -> bool:
    """Whether the single line break between ``line`` and ``following`` only wraps a sentence."""
    end = line.rstrip()
    if not end or _BULLET.match(following):
        return False
    if end[-1] in ".!?:;":  # a sentence ends there, unless the line ends in "e.g." and the like
        return _abbreviation(end)
    return end[-1] == "," or (following.lstrip()[:1].islower() and len(end) >= WRAPPED_LINE_CHARS)


def _lines(answer: str) -> list[tuple[int, int]]:
    """(start, end) of each logical line: physical lines, with soft-wrapped ones joined across the break."""
    out: list[tuple[int, int]] = []
    for line in _LINE.finditer(answer):
        if out and answer[out[-1][1] : line.start()].count("\n") <= 1 and _wrapped(answer[slice(*out[-1])], line.group()):
            out[-1] = (out[-1][0], line.end())
        else:
            out.append((line.start(), line.end()))
    return out


def _abbreviation(text: str) -> bool:
    """Whether ``text`` ends in an abbreviation ("e.g.", "(i.e."), whose full stop ends no sentence."""
    last = text.rsplit(None, 1)
    return bool(last) and last[-1].lstrip("([{\"'").lower() in _ABBREVIATIONS


def _not_abbreviation(text: str, m: re.Match[str]) -> bool:
    return not _abbreviation(text[: m.start()])


def _trim(answer: str, start: int, end: int) -> tuple[int, int]:
    piece = answer[start:end]
    left = len(piece) - len(piece.lstrip())
    right = len(piece.rstrip())
    return start + left, start + max(left, right)


def segment_answer(answer: str) -> list[Clause]:
    """Clauses of ``answer`` in order, each with its offsets; empty text gives no clauses."""
    spans: list[tuple[int, int]] = []
    for start, end in _lines(answer):
        bullet = _BULLET.match(answer[start:end])
        line_start = start + (bullet.end() if bullet else 0)
        for s0, e0 in _split(answer[line_start:end], line_start, _SENTENCE_END, _not_abbreviation):
            for s1, e1 in _split(answer[s0:e0], s0, _SEMICOLON):
                # A question is kept whole, so a restated question is recognised as one.
                sentence = answer[s1:e1]
                if _words(sentence) > LONG_SENTENCE_WORDS and not sentence.rstrip().endswith("?"):
                    spans.extend(_split(sentence, s1, _CONTRAST if _denied_whole(sentence) else _CONJUNCTION))
                else:
                    spans.append((s1, e1))
    merged: list[tuple[int, int]] = []
    for start, end in (_trim(answer, s, e) for s, e in spans):
        if end <= start or not any(ch.isalnum() for ch in answer[start:end]):
            continue
        # A fragment too short to state anything joins its predecessor on the same line.
        if merged and _words(answer[start:end]) < MIN_CLAUSE_WORDS and "\n" not in answer[merged[-1][1] : start]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [Clause(answer[s:e], s, e) for s, e in merged]


def distinct_clauses(clauses: list[Clause]) -> list[Clause]:
    """First occurrences only: pasting the same sentence again adds no evidence (nor new windows)."""
    seen: set[str] = set()
    kept: list[Clause] = []
    dropped = False
    for clause in clauses:
        key = " ".join(clause.text.casefold().split()).rstrip(".!?")
        if key in seen:
            dropped = True
            continue
        seen.add(key)
        kept.append(replace(clause, after_repeat=True) if dropped and kept else clause)
        dropped = False
    return kept
