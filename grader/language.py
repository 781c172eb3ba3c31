"""Whether an answer is English prose at all: ``other_language`` (lingua's judgement) or ``gibberish``.

Either flag zeroes an answer, so only text whose language can be told is judged: not text too short to
tell, not formulas or code, and not written lists of terms, which lack the function words that tell a
language. The detector is lingua's (``lingua-language-detector``; its models ship in the wheel).
"""

from __future__ import annotations

import re
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from .guards import is_keyword_list, words

@lru_cache(maxsize=1)
def _english_vocabulary() -> frozenset[str]:
    from .encoder import packaged_model_path

    vocab = (packaged_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in vocab if w.isalpha() and len(w) > 1)


LANGUAGE_MIN_WORDS = 6
# Scripts written without spaces (Chinese, Japanese, Thai): about two characters make a word.
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_LETTER_WORD = re.compile(r"[^\W\d_]{2,}")
# Worked calculations ("P(B) = 0,6^3 * 0,4^3 = 0,0138") and code ("if (ptr) { inorder(ptr->left); }") are
# mostly digits, operators and brackets, and their few words ("nCr", "ptr") are not English prose; humans
# gave such SAF answers 0.9 of full marks on average, so text this formal is not judged for its language.
FORMULA_SHARE = 0.25
_FORMULA = re.compile(r"[0-9=+*/^<>()\[\]{}%,.;&|-]")
# The items of a written-out list: lines, or enumerators ("1.", "2-", "3)") and bullets ("-", "*").
_LIST_ITEM = re.compile(r"(?:^|\s)(?:\d{1,2}\s*[.):-]|[-*\u2022])\s+")
LIST_MIN_ITEMS = 3
# lingua's confidence in the most likely language, when that is not English, above which the text is another
# language. Short prose in French, German, Dutch, ... scores 0.87-1.0; on Mohler and SAF no English answer
# reached 0.5 (English technical text that lingua doubts spreads its confidence over several languages).
OTHER_LANGUAGE_CONFIDENCE = 0.7
# The languages lingua weighs: English and the languages students most often write instead (European and
# major Asian ones). A language outside the set still lands on one of them, far from English. All 75 of
# lingua's languages cost 900 MB and wrongly flagged Mohler answers as Latin or Afrikaans (eval/experiments.md).
DETECTED_LANGUAGES = (
    Language.ENGLISH, Language.FRENCH, Language.GERMAN, Language.SPANISH, Language.PORTUGUESE, Language.ITALIAN,
    Language.DUTCH, Language.POLISH, Language.TURKISH, Language.INDONESIAN, Language.VIETNAMESE, Language.RUSSIAN,
    Language.UKRAINIAN, Language.ARABIC, Language.PERSIAN, Language.HINDI, Language.CHINESE, Language.JAPANESE,
    Language.KOREAN,
)


@lru_cache(maxsize=1)
def _language_detector() -> LanguageDetector:
    """lingua's detector, built once on first use (its models load lazily, about 280 MB once all are in)."""
    return LanguageDetectorBuilder.from_languages(*DETECTED_LANGUAGES).build()


def is_written_list(text: str) -> bool:
    """Several lines or enumerated items: a list, whose items need no function words between them."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= LIST_MIN_ITEMS or len(_LIST_ITEM.findall(text)) >= LIST_MIN_ITEMS


def _judged_words(text: str) -> int:
    """How many words the text has for judging its language, in any script."""
    unspaced = len(_UNSPACED.findall(text))
    return len(_LETTER_WORD.findall(_UNSPACED.sub(" ", text))) + unspaced // 2


def is_other_language(text: str) -> bool:
    """Whether lingua is confident that the text is written in a language other than English."""
    best = _language_detector().compute_language_confidence_values(text)[0]
    return best.language != Language.ENGLISH and best.value >= OTHER_LANGUAGE_CONFIDENCE


def is_gibberish(text: str) -> bool:
    """Keyboard mashing: mostly unknown words whose vowel share is not that of a natural language."""
    # Single letters ("a", "O(n)", "k") are variables as often as words: they do not tell the language.
    tokens = [t for t in words(text) if len(t) > 1]
    if len(tokens) < LANGUAGE_MIN_WORDS or sum(t in _english_vocabulary() for t in tokens) >= 0.5 * len(tokens):
        return False
    # Natural languages keep a vowel share of about a third; keyboard mashing does not.
    vowels = sum(ch in "aeiouy" for t in tokens for ch in t) / sum(map(len, tokens))
    return not 0.3 <= vowels <= 0.55


def language_flag(text: str) -> str | None:
    """``other_language`` or ``gibberish`` when the text is not English prose, else None.

    Only text lingua can judge is judged: not text too short to tell ("O(n)", "statically and
    dynamically"), not formulas or code, and not written lists of terms, which lack the function words
    that tell a language (every such flag on Mohler and SAF was wrong, human 0.45-1.0 of full marks).
    """
    if _judged_words(text) < LANGUAGE_MIN_WORDS:
        return None
    visible = "".join(text.split())
    if len(_FORMULA.findall(visible)) >= FORMULA_SHARE * len(visible):
        return None
    if not (is_keyword_list(text) or is_written_list(text)) and is_other_language(text):
        return "other_language"
    return "gibberish" if is_gibberish(text) else None
