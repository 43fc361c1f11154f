"""The serving entry points: start-up objects are frozen out of garbage collection."""

import gc

from clipcheck.apps import freeze_startup_objects


def test_startup_objects_are_frozen_and_later_garbage_is_collectable():
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 10_000
        first, second = [], []
        first.append(second)
        second.append(first)  # a reference cycle, like a DRF request leaves behind
        del first, second
        assert gc.collect() >= 2
    finally:
        gc.unfreeze()
