"""Every shape in the corpus: recorded by ``python flow.py`` in a fresh git repository, replayed
from another folder with only ``--store`` (local folder, and S3 on moto where the shape asks),
and the verdict is the right one: reproduced, unverified where nothing can be compared, or a
refusal naming its cause; never a false "reproduced". See corpus_harness.py for a shape's files."""

from corpus_harness import corpus_test

test_shape_replays_to_an_honest_verdict = corpus_test(0)
