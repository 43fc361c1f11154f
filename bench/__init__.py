"""Performance benchmarks for clipcheck.

Modules:
    assets  -- builds the benchmark checkpoint (random-weight CLIP ViT-B/32 with the real
               BPE vocabulary) and a corpus of product-photo JPEGs with texts.
    naive   -- the per-item client-loop baseline.
    levers  -- micro-benchmarks of the speed levers (dtype, batch, threads, decode,
               preprocessing, compilation).
    timing  -- shared timing helpers.

Every builder takes a ``Spec`` (``FULL`` or ``SMOKE``) so the same code runs in seconds
inside the test suite (``--smoke``).
"""


def quiet_transformers() -> None:
    """Silence transformers' progress bars and warnings so benchmark output stays a table."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
