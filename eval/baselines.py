"""Reference-similarity baselines, computed on the same rows as the grader.

Each returns one raw similarity per row (roughly 0..1); ``eval.calibration`` maps them to the
score scale exactly as it maps the grader's coverage, so the comparison is like for like.
For rows graded against a shipped rubric (no reference answer), the reference is the rubric's
key-point texts joined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from grader.rubric import Rubric
from grader.segment import segment_answer

BASELINES = {
    "tfidf_cosine": "TF-IDF cosine, answer vs reference",
    "embedding_cosine": "embedding cosine, whole answer vs whole reference",
    "sentence_max": "mean over reference sentences of the best-matching answer sentence (embeddings)",
}


def references_for(frame: pd.DataFrame, rubrics: dict[str, Rubric]) -> list[str]:
    return [
        ref if isinstance(ref, str) and ref.strip() else " ".join(kp.text for kp in rubrics[g].key_points)
        for ref, g in zip(frame["reference"], frame["group"])
    ]


def tfidf_cosine(answers: list[str], references: list[str]) -> np.ndarray:
    """Cosine of TF-IDF vectors (unigrams + bigrams, fitted on this data set's texts)."""
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english")
    vec.fit(list(dict.fromkeys(answers + references)))
    a, r = vec.transform(answers), vec.transform(references)  # rows are L2-normalized
    return np.asarray(a.multiply(r).sum(axis=1)).ravel()


def embedding_cosine(answers: list[str], references: list[str], encoder) -> np.ndarray:
    vectors = encoder.encode(list(dict.fromkeys(answers + references)))
    row = {t: i for i, t in enumerate(dict.fromkeys(answers + references))}
    a = vectors[[row[t] for t in answers]]
    r = vectors[[row[t] for t in references]]
    return np.einsum("ij,ij->i", a, r)


def sentence_max(answers: list[str], references: list[str], encoder) -> np.ndarray:
    """Chunked max-similarity: each reference sentence's best answer sentence, averaged (a recall)."""
    a_sents = [[c.text for c in segment_answer(t)] or [t] for t in answers]
    r_sents = [[c.text for c in segment_answer(t)] or [t] for t in references]
    unique = list(dict.fromkeys(s for group in a_sents + r_sents for s in group))
    vectors = encoder.encode(unique)
    row = {t: i for i, t in enumerate(unique)}
    out = np.empty(len(answers))
    for i, (asents, rsents) in enumerate(zip(a_sents, r_sents)):
        sims = vectors[[row[s] for s in rsents]] @ vectors[[row[s] for s in asents]].T
        out[i] = sims.max(axis=1).mean()
    return out


def baseline_scores(frame: pd.DataFrame, rubrics: dict[str, Rubric], encoder) -> pd.DataFrame:
    """One column per baseline (raw similarity), aligned with ``frame``'s rows."""
    answers = [str(a) for a in frame["answer"]]
    refs = references_for(frame, rubrics)
    return pd.DataFrame(
        {
            "tfidf_cosine": tfidf_cosine(answers, refs),
            "embedding_cosine": embedding_cosine(answers, refs, encoder),
            "sentence_max": sentence_max(answers, refs, encoder),
        },
        index=frame.index,
    )
