from grader.segment import segment_answer


def test_offsets_point_into_the_original_text():
    answer = "It normalizes activations, e.g. per batch; it adds gamma and beta.\n- faster training\n* higher learning rates"
    clauses = segment_answer(answer)
    assert [c.text for c in clauses] == [
        "It normalizes activations, e.g. per batch",
        "it adds gamma and beta.",
        "faster training",
        "higher learning rates",
    ]
    assert all(answer[c.start : c.end] == c.text for c in clauses)


def test_long_sentences_split_at_conjunctions_short_ones_do_not():
    short = segment_answer("Pooling reduces size and adds some invariance.")
    assert len(short) == 1
    long = segment_answer(
        "Max pooling keeps the strongest activation in every window of the feature map, "
        "and it shrinks the spatial size so later layers see a larger part of the image."
    )
    assert len(long) == 2


def test_a_sentence_called_untrue_is_split_only_at_a_contrast():
    # "It is not true that A, so B" denies B too; split there, B would stand as an undenied statement.
    denied = "It is not true that many units output exactly zero, so the activations in the network are sparse."
    assert [c.text for c in segment_answer(denied)] == [denied]
    contrast = "It is not true that sigmoid avoids vanishing gradients in deep networks, but ReLU mostly does avoid them."
    assert len(segment_answer(contrast)) == 2


def test_tiny_fragments_join_their_neighbour_and_empty_text_has_no_clauses():
    assert [c.text for c in segment_answer("PCA projects data. Yes. It keeps variance.")] == [
        "PCA projects data. Yes.",
        "It keeps variance.",
    ]
    assert segment_answer("   \n  ") == []


def test_a_line_break_inside_a_sentence_is_a_wrap_but_lists_stay_lists():
    # Hard-wrapped text: the break is a space, so "never makes them ... exactly zero" stays one statement.
    wrapped = (
        "You add a penalty to the loss. L1 never sets the weights of unimportant features\n"
        "exactly to zero, so all of them stay in the model,\nwhich is why it keeps every feature."
    )
    assert [c.text for c in segment_answer(wrapped)] == [
        "You add a penalty to the loss.",
        "L1 never sets the weights of unimportant features\nexactly to zero",
        "all of them stay in the model",
        "is why it keeps every feature.",
    ]
    # Short lines, lines that end a sentence, bullets and a blank line between paragraphs are boundaries.
    listed = "Steps:\nCollect the data\ngathering statistics\n- train a model\n\nthen evaluate it"
    assert [c.text for c in segment_answer(listed)] == [
        "Steps:", "Collect the data", "gathering statistics", "train a model", "then evaluate it",
    ]
    bullets = "Benefits:\n● faster convergence\n○ fewer parameters"
    assert [c.text for c in segment_answer(bullets)] == ["Benefits:", "faster convergence", "fewer parameters"]
