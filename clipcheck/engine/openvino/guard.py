"""The int8 guard: int8 scores measured against float32 ones, and the guard record a build keeps.

int8 is served only where its guard passed: on a held-out sample, verdicts
agree with float32 on at least ``GUARD_MIN_AGREEMENT`` of the pairs and no
score moves by more than ``GUARD_MAX_SCORE_GAP``.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np

from clipcheck.engine.calibration_set import CalibrationSet
from clipcheck.engine.lanes import available_cores
from clipcheck.engine.openvino.cache import (
    RuntimeCacheError,
    build_dir,
    check_made_from,
    checkpoint_digest,
    library_versions,
    manifest_sha256,
    read_manifest,
    verify,
)
from clipcheck.engine.openvino.compiled import compile_model
from clipcheck.engine.openvino.conversion import EXACT
from clipcheck.engine.openvino.runtime import OpenVinoRuntime

GUARD_MIN_AGREEMENT = 0.995
GUARD_MAX_SCORE_GAP = 0.01
# Bumped whenever quantisation or the guard changes: a build made by another
# recipe is stale and made again.
INT8_RECIPE = 3
INT8 = "int8"

GuardRecord = dict[str, Any]


def guard_figures(exact_scores: Any, int8_scores: Any, *, threshold: float) -> GuardRecord:
    """Verdict agreement and the largest score gap between two runtimes' scores."""
    exact_scores, int8_scores = np.asarray(exact_scores), np.asarray(int8_scores)
    agreement = float(np.mean((exact_scores < threshold) == (int8_scores < threshold)))
    gap = float(np.max(np.abs(exact_scores - int8_scores))) if len(exact_scores) else 0.0
    return {
        "pairs": int(len(exact_scores)),
        "threshold": float(threshold),
        "agreement": round(agreement, 6),
        "max_score_gap": round(gap, 6),
        "passed": agreement >= GUARD_MIN_AGREEMENT and gap <= GUARD_MAX_SCORE_GAP,
    }


def sample_scores(towers: dict[str, Any], sample: CalibrationSet, *, precision: str | None) -> list[float]:
    """API similarity scores of the sample's pairs through ``towers`` (OpenVINO
    models, in memory or paths) compiled at ``precision``."""
    threads = available_cores()
    runtime = OpenVinoRuntime(
        image_model=compile_model(towers["image"], precision=precision, threads=threads),
        text_model=compile_model(towers["text"], precision=precision, threads=threads),
        logit_scale=1.0, int8=False,
    )
    images = np.concatenate([runtime.image_features(batch) for batch in sample.pixel_batches()])
    texts = np.concatenate([
        runtime.text_features(batch["input_ids"], batch["attention_mask"]) for batch in sample.token_batches()
    ])
    return sample.pair_scores(images, texts)


def verified_guard(directory: os.PathLike[str], exact_dir: os.PathLike[str], **expected: Any) -> GuardRecord:
    """The guard record of the int8 build in ``directory``: verified, made from
    the exact build in ``exact_dir`` by the current recipe (and recording
    ``expected``); else RuntimeCacheError."""
    manifest = verify(directory, expected={"exact_manifest": manifest_sha256(Path(exact_dir)), **expected})
    guard = manifest.get("guard")
    if not isinstance(guard, dict) or guard.get("recipe") != INT8_RECIPE:
        raise RuntimeCacheError(f"{directory} was built by another int8 recipe")
    return guard


def int8_record(*, checkpoint: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> GuardRecord | None:
    """The guard record of this checkpoint's verified, current int8 build, or None."""
    root = build_dir(cache_dir, checkpoint)
    try:
        made_from = {"checkpoint_digest": checkpoint_digest(checkpoint), "versions": library_versions()}
        check_made_from(root / EXACT, read_manifest(root / EXACT), made_from)
        return verified_guard(root / INT8, root / EXACT)
    except (RuntimeCacheError, OSError):
        return None


def int8_proven(*, checkpoint: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> bool:
    record = int8_record(checkpoint=checkpoint, cache_dir=cache_dir)
    return bool(record and record.get("passed"))
