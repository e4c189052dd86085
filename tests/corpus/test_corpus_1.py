"""Part 2 of 3 of the corpus (see test_corpus.py)."""

from corpus_harness import corpus_test

test_shape_replays_to_an_honest_verdict = corpus_test(1)
