from mindset.data import corpus_text


def test_corpus_splits_are_real_english_and_disjoint():
    train, valid = corpus_text("train"), corpus_text("valid")
    assert len(valid) == 93_608 and len(train) == 3_916_492  # as documented in SOURCE.md
    assert "It is a truth universally acknowledged" in train
    words = valid.lower().split()
    assert sum(w in {"the", "and", "of", "to", "a"} for w in words) / len(words) > 0.1
    # whole chapters are held out: no paragraph of substance is on both sides (short lines like '"Yes."' may be)
    long_valid = {p for p in valid.split("\n\n") if len(p) >= 40}
    assert long_valid and not long_valid & set(train.split("\n\n"))
    assert "_" not in valid and "CHAPTER" not in valid
