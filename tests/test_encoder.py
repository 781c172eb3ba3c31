"""The encoder's readings: one pass per text, span vectors pooled from it, long texts in windows."""

from __future__ import annotations

import numpy as np

from grader.encoder import windows
from grader.match import answer_spans, span_text
from grader.segment import segment_answer

ANSWER = (
    "Max pooling keeps the largest value in each 2x2 window, which halves the width and height of the "
    "feature maps. It adds no weights, so there is nothing to learn."
)


def test_a_reading_gives_the_same_sentence_vector_as_encode(grader):
    (reading,) = grader.encoder.read([ANSWER])
    assert np.array_equal(reading.sentence, grader.encoder.encode([ANSWER])[0])
    assert len(reading.tokens) == len(reading.offsets) and reading.offsets[-1, 1] <= len(ANSWER)


def test_a_pooled_clause_vector_is_near_its_separately_encoded_vector(grader):
    clauses = segment_answer(ANSWER)
    spans = answer_spans(clauses)
    (reading,) = grader.encoder.read([ANSWER])
    pooled = reading.pool(np.array([(s.start, s.end) for s in spans]))
    separate = grader.encoder.encode([span_text(clauses, s) for s in spans])
    cosine = (pooled * separate).sum(axis=1)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    # Pooled vectors carry the rest of the answer as context, so they are near, not equal (eval/SPANS.md).
    assert cosine.min() > 0.4 and cosine.mean() > 0.7


def test_pooling_a_range_averages_exactly_its_word_pieces(grader):
    (reading,) = grader.encoder.read([ANSWER])
    start = ANSWER.index("It adds")
    inside = (reading.offsets[:, 0] >= start) & (reading.offsets[:, 1] <= len(ANSWER))
    mean = reading.tokens[inside].mean(axis=0)
    assert np.allclose(reading.pool(np.array([[start, len(ANSWER)]]))[0], mean / np.linalg.norm(mean), atol=1e-5)
    words = reading.word_tokens(start)
    assert len(words) == len("It adds no weights so there is nothing to learn".split())


def test_a_text_over_the_models_limit_is_read_whole_in_overlapping_windows(grader):
    long = " ".join([ANSWER] * 9)
    (reading,) = grader.encoder.read([long])
    pieces = grader.encoder._pieces.encode(long, add_special_tokens=False)
    assert len(pieces.ids) > grader.encoder.max_seq_length  # past the limit: more than one window
    assert len(reading.tokens) == len(pieces.ids) and np.all(np.abs(reading.tokens).sum(axis=1) > 0)
    assert reading.word_tokens(long.rindex("nothing")).shape[0] == 3  # the last words have vectors too
    (truncated,) = grader.encoder.read([long], whole=False)
    assert np.array_equal(truncated.sentence, reading.sentence) and len(truncated.tokens) < len(reading.tokens)


def test_windows_cover_every_piece_and_overlap_by_half():
    spans = windows(600, 254)
    assert spans[0, 0] == 0 and spans[-1, 1] == 600 and np.all(spans[:, 1] - spans[:, 0] == 254)
    assert np.all(spans[1:, 0] < spans[:-1, 1])
    assert windows(100, 254).tolist() == [[0, 100]]
