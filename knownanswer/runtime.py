"""A known-answer model's int8 build and its guard sample (bench and tests build the same one)."""

from pathlib import Path

import knownanswer


def int8_guard_sample(checkpoint: Path = knownanswer.CHECKPOINT):
    """The int8 guard's sample: the model's held-out pictures, each with its
    caption and with another's."""
    from clipcheck.engine.calibration_set import calibration_set_build
    from knownanswer import domain

    items = domain.heldout_items(per_pair=2)
    return calibration_set_build(
        checkpoint=str(checkpoint),
        images=[domain.render(shape, colour, seed=seed, size=size) for shape, colour, seed, size in items],
        texts=[domain.caption(shape, colour, seed % len(domain.FULL_TEMPLATES)) for shape, colour, seed, _ in items],
        source="known-answer held-out", threshold=knownanswer.calibrated_threshold(checkpoint),
    )


def int8_build(cache_dir, checkpoint: Path = knownanswer.CHECKPOINT):
    """A known-answer model's int8 build (calibrated on the shipped generic
    set, guarded on ``int8_guard_sample``), made once per cache; its guard record."""
    from clipcheck.engine.openvino import runtime_build

    return runtime_build(
        checkpoint=str(checkpoint), cache_dir=cache_dir, sample=int8_guard_sample(checkpoint),
        threshold=knownanswer.calibrated_threshold(checkpoint),
    )
