"""Text-level checks that keep the grader hard to fool: negation, keyword lists, instructions, non-answers.

These look at words only; the checks that need embeddings (question restated, off-topic)
live in ``match.py`` beside the similarity matrix they use.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import Stemmer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from wordfreq import zipf_frequency

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
    "raise", "raises", "raised", "grow", "grows", "better", "easier", "stronger", "enlarge", "enlarges", "expand",
    "expands",
}
_DOWN = {
    "decrease", "decreases", "decreased", "decreasing", "less", "fewer", "lower", "smaller", "slower",
    "reduce", "reduces", "reduced", "reducing", "shrink", "shrinks", "worse", "harder", "weaker",
    "cut", "cuts", "halve", "halves", "lowers", "lowered", "lessen", "lessens",
}
# Superlatives form their own scale: "keeps the largest value" vs "makes the map smaller" is no reversal.
_MOST = {"largest", "biggest", "most", "highest", "greatest", "maximum"}
_LEAST = {"smallest", "least", "lowest", "minimum", "fewest"}
# Text aimed at the grader names the grader (or its machinery) and demands a score.
_ADDRESSEE = re.compile(
    r"\b(?:grader|graders|marker|evaluator|examiner|assessor|grading|rubric|instructions?|system prompt|admin|"
    r"override|assistant|language model|automated|ai)\b|</?\s*\w*(?:answer|grader|instruction)\w*\s*>",
    re.IGNORECASE,
)
_DEMAND = re.compile(
    r"\b\d+\s*(?:/|out of)\s*\d+\b|\bfull (?:marks?|credit|points?|score)\b|"
    r"\b(?:maximum|max|perfect|top|highest) (?:marks?|score|grade|points?)\b|\bscore\s*[:=]\s*\d|"
    r"\b(?:award|give|assign|output)\b.{0,40}\b(?:marks?|points?|credit|score|grade|\d)\b|\bmark (?:it|this)\b|"
    r"\bkey points?\b.{0,40}\b(?:satisfied|matched|met|covered)\b|\b(?:do not|don't) lower\b|"
    r"\bskip\b.{0,30}\bcheck|\b(?:ignore|disregard|forget)\b.{0,40}\b(?:rubric|instructions?|rules|above|previous|text)\b|"
    r"\bcorrect grade\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    """The words that carry content, in order: stop words and words under 3 letters left out."""
    return [w for w in words(text) if w not in ENGLISH_STOP_WORDS and len(w) > 2]


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


def _direction(tokens: set[str], up_words: set[str], down_words: set[str]) -> int:
    up, down = bool(tokens & up_words), bool(tokens & down_words)
    return 1 if up and not down else -1 if down and not up else 0


DIRECTED_LOOKAHEAD = 3  # "raises [the] bias": the thing a direction word acts on follows within this many words


def _directed(tokens: list[str]) -> dict[str, int]:
    """What goes up or down: {"bias": +1, "variance": -1} for "raises bias but lowers variance"."""
    found: dict[str, int] = {}
    mixed: set[str] = set()
    for i, token in enumerate(tokens):
        sign = 1 if token in _UP or token in _MOST else -1 if token in _DOWN or token in _LEAST else 0
        if not sign:
            continue
        for nxt in tokens[i + 1 : i + 1 + DIRECTED_LOOKAHEAD]:
            if nxt not in ENGLISH_STOP_WORDS and nxt not in _UP | _DOWN | _MOST | _LEAST:
                if found.setdefault(nxt, sign) != sign:
                    mixed.add(nxt)
                break
    # "speed increased by a factor of 10, so the diameter decreased by the factor": both ways, no direction.
    return {w: d for w, d in found.items() if w not in mixed}


def _reversed(statement: list[str], evidence: list[str]) -> bool:
    """Opposite directions about the same thing, or, failing a shared thing, about the clause as a whole."""
    said, answered = _directed(statement), _directed(evidence)
    shared = said.keys() & answered.keys()
    if shared:
        return any(said[w] == -answered[w] for w in shared)
    # Each side moves its own thing and neither names the other's ("reduces the overhead" vs "increases
    # latency"): two different things, no reversal. "shrinks the feature maps" vs "enlarges the height of
    # the feature maps" names the statement's thing, so the clauses are compared as a whole.
    if said and answered and not (said.keys() & set(evidence) or answered.keys() & set(statement)):
        return False
    for up_words, down_words in ((_UP, _DOWN), (_MOST, _LEAST)):
        d = _direction(set(statement), up_words, down_words)
        if d != 0 and _direction(set(evidence), up_words, down_words) == -d:
            return True
    return False


# A negation inside a condition or a contrast with something else ("when an array is not declared static,
# it is created on every call", "if not, push it", "whereas the while loop may never run") does not deny
# the main claim. Relative pronouns ("an array that is not static") were tried too: they also excuse
# "it means that it does not ...", and gained no more than 0.005 (eval/experiments.md).
# A purpose ("so that large features do not dominate", "in order not to overflow") states what is
# prevented, which restates a point about the harm instead of denying it.
_SUBORDINATE = re.compile(
    r"\b(?:if|unless|whether|when|whenever|whereas|while|although|though|unlike|otherwise|so that|in order)\b",
    re.IGNORECASE,
)
# A statement that restricts ("can only be accessed inside", "initialized only once", "the sender port is
# optional", "avoids making copies") is restated, not denied, by a negation ("cannot be used outside",
# "not initialized each time", "does not have to copy"): on Mohler these were most of the wrong flags.
_RESTRICTION = {
    "only", "optional", "optionally", "avoid", "avoids", "prevent", "prevents", "once", "except", "unless",
    "maximum", "minimum", "least", "limit", "limits", "limited",
}


def restricts(statement: str) -> bool:
    """Whether ``statement`` states a limit, which a negation usually rephrases instead of denying."""
    return bool(_RESTRICTION & set(words(statement)))


# A statement that something is prevented ("prevents overfitting", "keeps the model from overfitting",
# "stops it from memorizing the data", "reduces overfitting") says the thing does not happen: an answer's
# "so the model does not overfit" restates it. The words naming what is prevented are left out of what a
# negation can deny; "does not prevent overfitting" still denies the statement (it negates the verb).
_WITHIN_FOUR = r"(?:\W+\w+){0,4}?\W+"  # up to four words on: "keeps [the model] from", "prevents [it] from"
_PREVENTS = re.compile(
    r"\b(?:(?:prevent|avoid|reduc|minimi[sz]|mitigat|combat|counteract|curb|suppress)\w*|"
    rf"(?:stop|keep|kept|guard|protect|prohibit|discourag|deter)\w*{_WITHIN_FOUR}(?:from|against)\b)",
    re.IGNORECASE,
)
_FROM = re.compile(rf"{_WITHIN_FOUR}from\b", re.IGNORECASE)  # "prevents the model from overfitting"
PREVENTED_WORDS = 2  # content words after the verb (or its "from") that name what is prevented, up to a joint
_JOINT = re.compile(
    r"\b(?:so|and|but|or|which|that|because|by|while|when|whereas|thus|hence|to|of|in|for|with)\b", re.IGNORECASE
)


@lru_cache(maxsize=4096)  # a rubric's statements, asked once per clause and key point while judging
def prevented_stems(statement: str) -> frozenset[str]:
    """Stems of what ``statement`` says is prevented or reduced ({"overfit"} for "it prevents overfitting")."""
    found: set[str] = set()
    for m in _PREVENTS.finditer(statement):
        at = f.end() if (f := _FROM.match(statement, m.end())) else m.end()
        rest = _JOINT.split(_SCOPE_END.split(statement[at:], maxsplit=1)[0], maxsplit=1)[0]
        found |= {stem(w) for w in content_words(rest)[:PREVENTED_WORDS]}
    return frozenset(found)


def polarity_flipped(statement: str, evidence: str) -> bool:
    """True when ``evidence`` says the opposite of ``statement``: it negates what the statement
    affirms, or it states the opposite direction (increase/decrease, faster/slower, ...).

    Only added negation counts: an answer that drops a statement's own "no" usually rephrases it
    ("no learnable parameters" -> "parameter-free"), which says the same thing.
    """
    # "It is not true that ..." negates the whole proposition, the statement's own negations included
    # ("uses running averages instead of batch statistics"); parallel negations ("no parameters, nothing to
    # learn") restate a negative statement, so otherwise a negation counts only against a positive one.
    added = is_negated(evidence) and not is_negated(statement)
    negated = (added and denies_statement(statement, evidence, restricted=restricts(statement))) or denies_proposition(
        statement, evidence
    )
    swapped = _reversed(words(statement), words(evidence))
    return negated != swapped


# Named counterparts: terms that differ only in a number ("L1" / "L2", "IPv4" / "IPv6") or in an over/under
# prefix ("overfitting" / "underfitting"). A rubric that names one in one key point and its counterpart in
# another contrasts them, and a clause that says one point's thing of the other names the wrong one: "L2 is the
# one that zeroes out weights" swaps the roles of the L1 point.
_TERM = re.compile(r"\b[A-Za-z]+\d*\b")
_NUMBERED = re.compile(r"([a-z]+)(\d+)")
_COUNTER_PREFIXES = ("over", "under")
Named = tuple[str, str]  # (what counterparts share, what sets this one apart): ("l", "1"), ("fit", "over")


def _named(term: str) -> Named | None:
    """A term with counterparts as (shared part, distinguishing part); None for a term without any."""
    if m := _NUMBERED.fullmatch(term):
        return m.group(1), m.group(2)
    for prefix in _COUNTER_PREFIXES:
        if term.startswith(prefix) and len(term) > len(prefix) + 2:
            return stem(term[len(prefix) :]), prefix
    return None


def named_terms(text: str) -> set[Named]:
    """The terms of ``text`` that have counterparts, inflections merged ("overfits", "overfitting")."""
    return {n for t in _TERM.findall(text) if (n := _named(t.lower()))}


def contrasted_terms(points: list[str]) -> list[dict[Named, set[Named]]]:
    """Per key point (all its texts joined), each term it names whose counterparts only other key points name.

    ``{("l", "1"): {("l", "2")}}`` for the L1 point of a rubric that also has an L2 point; empty for most rubrics.
    """
    named = [named_terms(text) for text in points]
    out: list[dict[Named, set[Named]]] = []
    for k, own in enumerate(named):
        # A point that names both a term and its counterpart compares them (and is never swapped), as does a
        # point naming both for the others.
        out.append({
            a: found
            for a in own
            if (found := {b for j, n in enumerate(named) if j != k and a not in n for b in n - own if b[0] == a[0]})
        })
    return out


SUBJECT_WORDS = 4  # a counterpart named this early is what the clause is about ("L2 is the one that ...")
_COMPARED = re.compile(r"\b(?:unlike|contrast|compared|than|versus|vs)\b", re.IGNORECASE)


def swaps_counterpart(contrasts: dict[Named, set[Named]], evidence: str) -> bool:
    """Whether ``evidence`` is about a counterpart of the key point's own term, which it does not name.

    Only a counterpart in the clause's first few words counts: "L2 is the one that zeroes out weights" is
    about L2; "which is why lasso selects features, L2 shrinks them" says the L1 point's thing of lasso.
    """
    if not contrasts:  # most key points name no counterpart: nothing to read
        return False
    opening = " ".join(evidence.split()[:SUBJECT_WORDS])
    if _COMPARED.search(opening):  # "In contrast to IPv4, the extension headers ..." is about the other one
        return False
    said, subject = named_terms(evidence), named_terms(opening)
    return any(a not in said and subject & others for a, others in contrasts.items())


# "no more than two children", "cannot be longer than 8 bytes", "must not exceed the window" state a bound:
# they restate a statement about a maximum or a size ("at most two children") and deny only a statement
# that makes the same comparison ("a node can have more than two children").
_COMPARATIVE = r"(?:(?:more|less|fewer|greater|larger|bigger|higher|lower|smaller|longer|shorter)\s+than\b|exceed)"
_BOUND = re.compile(rf"\W*(?:\w+\W+){{0,2}}?{_COMPARATIVE}", re.IGNORECASE)
_COMPARES = re.compile(rf"\b{_COMPARATIVE}", re.IGNORECASE)
SCOPE_WORDS = 3  # the content words after a negation cue that it negates ("does not [normalize the activations]")
_SCOPE_END = re.compile(r"[,;:.!?()\[\]]")
_CONTRASTED_VALUE = re.compile(r"\s*[-+~]?\d")  # "instead of 25": a value contrasted, not a claim denied
# "It is not true that ...", "not the case that ...": the cue negates the whole proposition that follows.
_PROPOSITION = re.compile(r"\s+(?:true|the case|correct|so)\s+that\b", re.IGNORECASE)
# "It is false that ...", "a myth that ...": the words that call a proposition untrue without a negation cue.
_FALSE_THAT = re.compile(r"\b(?:false|untrue|wrong|incorrect|a myth)\s+that\b", re.IGNORECASE)


def untrue_propositions(text: str) -> list[int]:
    """Offsets in ``text`` where a proposition called untrue begins ("it is not true that | P", "a myth that | P")."""
    after_cue = [p.end() for m in _NEGATION.finditer(text) if (p := _PROPOSITION.match(text, m.end()))]
    return after_cue + [m.end() for m in _FALSE_THAT.finditer(text)]


def denies_proposition(statement: str, evidence: str) -> bool:
    """Whether ``evidence`` says "it is not true that P" (or "not the case that P", "false that P") with P about ``statement``."""
    said = content_stems(statement)
    for start in untrue_propositions(evidence):
        proposition = _SCOPE_END.split(evidence[start:], maxsplit=1)[0]
        hits = [stem(w) in said for w in content_words(proposition)]
        if hits and sum(hits) >= min(2, len(hits)):
            return True
    return False


def denies_statement(statement: str, evidence: str, restricted: bool = False) -> bool:
    """Whether a negation in ``evidence`` negates something ``statement`` says.

    "A constructor cannot return values" does not deny "a constructor is called whenever an object is
    created", nor does "UDP does not have a sequence number field" deny "the UDP header has a fixed
    length": what follows the cue is not what the statement asserts. A cue denies the statement when
    one of the first few content words it governs is a word of the statement (on Mohler and SAF this
    halved the answers wrongly flagged as contradictions; eval/experiments.md). A ``restricted``
    statement (see ``restricts``) is denied only when every word the cue governs is one of its own:
    "cannot be used outside the function" rephrases "can only be accessed inside the function", while
    "does not keep the largest value" still denies "keeps only the largest value".
    """
    said, prevented = content_stems(statement), prevented_stems(statement)
    for m in _NEGATION.finditer(evidence):
        if _SUBORDINATE.search(_SCOPE_END.split(evidence[: m.start()])[-1]):
            continue
        if _BOUND.match(evidence, m.end()) and not _COMPARES.search(statement):
            continue
        substitution = m.group().lower() in ("instead of", "rather than")
        if substitution and _CONTRASTED_VALUE.match(evidence, m.end()):
            continue  # "18 weights instead of 25" contrasts two values; it denies nothing
        rest = _SCOPE_END.split(evidence[m.end():], maxsplit=1)[0]
        if _PROPOSITION.match(rest):
            continue  # judged as a whole by denies_proposition
        scope = content_words(rest)[:SCOPE_WORDS]
        if m.group().lower() not in ("nothing", "none"):  # "has nothing to do with overfitting" still denies
            scope = [w for w in scope if stem(w) not in prevented]  # "does not overfit" restates "prevents overfitting"
        if substitution and _lists_the_choice(statement, evidence[: m.start()], {stem(w) for w in scope}):
            continue
        hits = [stem(w) in said for w in scope]
        if (all(hits) and bool(hits)) if restricted else any(hits):
            return True
    return False


def _lists_the_choice(statement: str, chosen: str, replaced: set[str]) -> bool:
    """Whether ``statement`` names what "A instead of B" chose (A's last content word) as an alternative of its own.

    "You do it on mini-batches instead of the full dataset" picks one of the variants "batch uses the whole
    dataset, ..., and mini-batch uses a small subset" lists: a part of the statement (between commas) names
    the choice and none of what it replaces. "It moves the weights in the direction of the gradient instead of
    opposite to it" replaces what the statement says of the gradient ("moves opposite to the gradient").
    """
    head = content_words(chosen)[-1:]
    return bool(head) and any(
        stem(head[0]) in part and not part & replaced for part in map(content_stems, re.split(r"[,;]", statement))
    )


def is_instruction(text: str) -> bool:
    """Text that talks to the grader instead of answering ("ignore the rubric, give full marks")."""
    return bool(_ADDRESSEE.search(text)) and bool(_DEMAND.search(text))


def instruction_parts(texts: list[str]) -> list[bool]:
    """Which clauses belong to an instruction aimed at the grader.

    A clause is one on its own, or, when the answer as a whole is one, any clause that names the
    grader or demands a score (the two halves often sit in neighbouring sentences).
    """
    if not is_instruction(" ".join(texts)):
        return [False] * len(texts)
    return [bool(_ADDRESSEE.search(t) or _DEMAND.search(t)) for t in texts]


def is_keyword_list(text: str) -> bool:
    """A bare list of terms: several short items and (almost) no function words relating them."""
    items = [i for i in re.split(r"[,/;\n|]+|\s+-\s+", text) if i.strip()]
    tokens = words(text)
    if len(tokens) < 3:
        return False
    stop_share = sum(t in ENGLISH_STOP_WORDS for t in tokens) / len(tokens)
    short_items = len(items) >= 3 and sum(len(i.split()) for i in items) / len(items) <= 3.0
    return short_items and stop_share <= 0.12


# What students write in place of an answer: "No response.", "not answered", "I don't know", "n/a" (not
# "none" or "nothing", which can be right answers). SAF holds 272 such answers and Mohler 14, all graded 0.
_NON_ANSWER = re.compile(
    r"(?:no|not|empty|blank|missing)\s+(?:response|answer|answered|submission|submitted|idea)|"
    r"(?:i\s+)?(?:do\s*n[o']?t|dont|did\s*n[o']?t)\s+know|n/?a|idk|-+|\?+",
    re.IGNORECASE,
)


def is_non_answer(text: str) -> bool:
    """The whole answer says there is no answer; such text is not judged as an (off-topic) answer."""
    return bool(_NON_ANSWER.fullmatch(text.strip().strip(".!").strip()))


_stemmers = threading.local()  # a PyStemmer stemmer keeps state between calls: one per thread


@lru_cache(maxsize=1 << 16)  # judging stems the same words over and over (each clause once per window and point)
def stem(word: str) -> str:
    """The Snowball (Porter 2) English stem of a lower-case word: "adding"/"adds" -> "add"."""
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = Stemmer.Stemmer("english")
    return stemmer.stemWord(word)


@lru_cache(maxsize=4096)  # a rubric's question and key points, asked once per clause while judging
def content_stems(text: str) -> frozenset[str]:
    """The stems of a text's content words (stop words and words under 3 letters left out)."""
    return frozenset(stem(w) for w in content_words(text))


def adds_to_question(clause: str, question: str, key_points: list[str]) -> bool:
    """Whether ``clause`` uses a word of the key points that the question does not already use.

    "The sizeof operator returns the size of the operand." is near its question ("What does the sizeof
    operator return?") but adds "size" and "operand" from the answer key: it answers, it does not only
    restate. Mohler answers like this were zeroed as restated with a human mean of 4.75 of 5.
    """
    new = set().union(*(content_stems(k) for k in key_points)) - content_stems(question)
    return bool(new & content_stems(clause))


# Words this common in English ("take", "get", "set", "make", "use": a Zipf frequency of 5.5 or more, i.e. used
# 10^5.5 times per billion words, by wordfreq) build a claim's frame, not what makes it wrong: "Max-pooling takes the
# average" is wrong for "average", and "Max pooling takes the largest value in each window", a correct answer, shares
# only the frame word "takes" with it (it was contradicted: 0.19 of 5).
LIGHT_ZIPF = 5.5


@lru_cache(maxsize=65536)
def is_light_word(word: str) -> bool:
    """Whether ``word``, or the word its stem spells ("takes" -> "take"), is among the most common English words."""
    return max(zipf_frequency(word, "en"), zipf_frequency(stem(word), "en")) >= LIGHT_ZIPF


# "unlike X", "rather than X", "instead of X", "as opposed to X", "not X": an optional article, then the word set aside.
_SET_ASIDE = re.compile(
    r"\b(?:unlike|rather than|instead of|as opposed to|in contrast to|not)\s+(?:(?:the|a|an|its|their)\s+)?([A-Za-z]+)",
    re.IGNORECASE,
)


def _claimed_outside(clause: str) -> frozenset[str]:
    """Stems the clause uses outside its set-aside phrases ("average" in "the average, unlike the max")."""
    return content_stems(_SET_ASIDE.sub(" ", clause))


def states_claim(claim: str, claim_context: list[str], clause: str) -> bool:
    """Whether ``clause`` shares a word that sets ``claim`` apart from ``claim_context``.

    A listed contradiction or misconception is on the key point's topic by design, so embedding
    similarity alone cannot tell "keeps the largest value" from "takes the average"; the clause
    must also use a word of what makes the claim different ("average"). Where the claim differs in
    rarer words as well as common ones, the clause must share a rarer one (``LIGHT_ZIPF``).
    """
    distinctive = content_stems(claim) - set().union(*(content_stems(t) for t in claim_context))
    heavy = {stem(w) for w in content_words(claim) if not is_light_word(w)} & distinctive
    needed = heavy or distinctive
    if not needed:
        return True
    # A word named only as what the clause sets aside ("Unlike average pooling, ...", "... rather than the average")
    # is not claimed of the subject.
    set_aside = {stem(m.group(1)) for m in _SET_ASIDE.finditer(clause)} - _claimed_outside(clause)
    return bool(needed & (content_stems(clause) - set_aside))
