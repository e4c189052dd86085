"""Part 2 of 6 of the corpus (see test_corpus.py): six modules, so that xdist's
``--dist loadfile`` can share the corpus's ~100 cases evenly among the workers."""

from corpus_harness import corpus_test

test_shape_replays_to_an_honest_verdict = corpus_test(1)
