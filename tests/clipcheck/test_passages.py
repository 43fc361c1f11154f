"""Long texts split into passages that fit the context (clipcheck.passages)."""

from clipcheck.passages import text_passages


def count_words_plus_two(texts):
    # A stand-in tokenizer: one token per word, plus start and end tokens.
    return [len(text.split()) + 2 for text in texts]


def split(text, max_tokens=8, max_passages=32):
    return text_passages(text, count_tokens=count_words_plus_two, max_tokens=max_tokens, max_passages=max_passages)


def test_each_sentence_is_a_passage_and_spans_point_into_the_text():
    text = "Free shipping on all orders. A red star!\nReturns within 30 days; ask us."
    passages, covered = split(text)
    assert [p.text for p in passages] == [
        "Free shipping on all orders.", "A red star!", "Returns within 30 days;", "ask us.",
    ]
    assert covered is True
    assert all(text[p.start:p.end] == p.text for p in passages)
    assert [p.index for p in passages] == [0, 1, 2, 3]


def test_a_sentence_longer_than_the_context_is_cut_at_words_into_windows_that_fit():
    text = " ".join(f"word{i}" for i in range(20)) + "."
    passages, covered = split(text, max_tokens=8)
    assert covered is True
    assert all(count_words_plus_two([p.text])[0] <= 8 for p in passages)
    # Every word is in exactly one passage, in order.
    assert " ".join(p.text for p in passages) == text


def test_too_many_sentences_are_packed_together_while_they_fit():
    text = " ".join(f"Item {i}." for i in range(12))
    passages, covered = split(text, max_tokens=10, max_passages=4)
    assert len(passages) <= 4 and covered is True
    assert all(count_words_plus_two([p.text])[0] <= 10 for p in passages)
    assert text[passages[0].start:passages[-1].end] == text


def test_what_the_passage_bound_leaves_out_is_reported_as_not_covered():
    text = " ".join(f"Sentence number {i} is long." for i in range(10))
    passages, covered = split(text, max_tokens=7, max_passages=3)
    assert len(passages) == 3 and covered is False


def test_the_split_is_deterministic():
    text = "One. Two three. " * 30
    assert split(text, max_passages=5) == split(text, max_passages=5)


def test_planning_a_text_far_longer_than_can_be_scored_costs_what_can_be_scored():
    """One 'sentence' of 3,000 words: windows are searched among the next context's
    worth of words, and the split stops once the passages that can be scored are
    full; it searched the whole remainder for every window."""
    tokenized = []

    def counting(texts):
        tokenized.extend(texts)
        return count_words_plus_two(texts)

    text = " ".join(f"w{i}" for i in range(3000))
    passages, covered = text_passages(text, count_tokens=counting, max_tokens=8, max_passages=4)

    assert covered is False and len(passages) == 4
    assert all(count_words_plus_two([p.text])[0] <= 8 for p in passages)
    tokenized_characters = sum(map(len, tokenized))
    print(f"\n[passages] 3,000 words, 4 passages of 6 words: {len(tokenized)} calls, "
          f"{tokenized_characters} characters tokenized for a {len(text)}-character text")
    # The whole text once (whether it fits), then a few searches of at most a context each.
    assert tokenized_characters < 2 * len(text)
