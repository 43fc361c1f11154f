"""The int8 build: quantised by ``int8_search``, kept with its guard record, served only where it passed."""

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from clipcheck.engine.calibration_set import CalibrationSet
from clipcheck.engine.openvino.cache import (
    Manifest,
    RuntimeCache,
    RuntimeCacheError,
    library_versions,
    manifest_sha256,
    read_manifest,
)
from clipcheck.engine.openvino.conversion import ensure_exact_build
from clipcheck.engine.openvino.guard import (
    GUARD_MAX_SCORE_GAP,
    GUARD_MIN_AGREEMENT,
    INT8,
    GuardRecord,
    verified_guard,
)
from clipcheck.engine.openvino.search import int8_search

# Listings the build command calibrates on (as many again are held out for the guard).
CALIBRATION_SIZE = 64

CacheDir = str | os.PathLike[str] | RuntimeCache


def ensure_int8_build(*, checkpoint: str | os.PathLike[str], cache_dir: CacheDir,
                      calibration: CalibrationSet | None = None, threshold: float | None = None,
                      exact_dir: Path | None = None) -> tuple[Path, GuardRecord]:
    """The verified int8 build and its guard record.

    A missing or corrupt build, or one made from another exact build than
    ``exact_dir`` (verified by the caller; by default here), is quantised
    again, with ``calibration`` or the shipped generic set; a build whose
    guard failed is refused (``RuntimeError``): int8 runs only where its
    verdicts are proven.
    """
    target, guard = _int8_build(checkpoint=checkpoint, cache_dir=cache_dir, calibration=calibration,
                                threshold=threshold, reuse=lambda guard: True, exact_dir=exact_dir)
    if not guard["passed"]:
        raise RuntimeError(
            f"The int8 model failed its guard (verdict agreement {guard['agreement']:.2%}, "
            f"max score gap {guard['max_score_gap']:.4f}; needed >= {GUARD_MIN_AGREEMENT:.1%} "
            f"and <= {GUARD_MAX_SCORE_GAP}): use RUNTIME 'openvino'."
        )
    return target, guard


def runtime_build(*, checkpoint: str | os.PathLike[str], cache_dir: CacheDir,
                  calibration: CalibrationSet | None = None, sample: CalibrationSet | None = None,
                  threshold: float | None = None, rebuild: bool = False) -> GuardRecord:
    """Build (or reuse) the int8 model for this calibration set; its guard record.

    A build is reused when it verifies and was calibrated on the same set;
    otherwise the towers are quantised again and the guard rerun.
    """
    wanted = calibration.digest if calibration is not None else "generic"

    def same_set(guard: GuardRecord) -> bool:
        built = guard["calibration"]["digest"] if guard["calibration"]["source"] != "generic" else "generic"
        return not rebuild and built == wanted and (threshold is None or guard["threshold"] == float(threshold))

    return _int8_build(checkpoint=checkpoint, cache_dir=cache_dir, calibration=calibration, sample=sample,
                       threshold=threshold, reuse=same_set)[1]


def build_int8(*, checkpoint: str | os.PathLike[str], cache_dir: CacheDir, calibration: CalibrationSet | None = None,
               threshold: float | None = None, sample: CalibrationSet | None = None) -> GuardRecord:
    """Quantise both towers with NNCF, run the guard, store build and figures (whatever was stored before).

    ``calibration`` and ``sample`` are ``CalibrationSet``s (pixel arrays and
    texts, already preprocessed the engine's way); by default the shipped
    generic set. The guard compares int8 with float32 scores on ``sample``
    (by default the calibration set) at ``threshold``; ``int8_search``
    keeps layers exact until it passes, if it can. Returns the guard record.
    """
    return _int8_build(checkpoint=checkpoint, cache_dir=cache_dir, calibration=calibration, sample=sample,
                       threshold=threshold, reuse=lambda guard: False)[1]


def _int8_build(*, checkpoint: str | os.PathLike[str], cache_dir: CacheDir, calibration: CalibrationSet | None,
                threshold: float | None, reuse: Callable[[GuardRecord], bool],
                sample: CalibrationSet | None = None, exact_dir: Path | None = None) -> tuple[Path, GuardRecord]:
    """The int8 build: the stored one where it verifies and ``reuse`` accepts its
    guard record, else quantised again (by one process at a time)."""
    cache = RuntimeCache.of(cache_dir, checkpoint)
    if exact_dir is None:
        exact_dir, _ = ensure_exact_build(checkpoint=checkpoint, cache_dir=cache)
    # Marks the build made here: accepted whatever ``reuse`` says of it.
    build_id = secrets.token_hex(8)

    def load(directory: Path) -> GuardRecord:
        guard = verified_guard(directory, exact_dir)
        if not reuse(guard) and read_manifest(directory).get("build") != build_id:
            raise RuntimeCacheError(f"{directory} was calibrated on another set")
        return guard

    def build(staging: Path) -> Manifest:
        import openvino as ov

        nonlocal calibration
        if calibration is None:
            from clipcheck.engine.calibration_set import generic_calibration_set

            calibration = generic_calibration_set(checkpoint)
        guarded = sample or calibration
        towers, guard = int8_search(
            exact_dir=exact_dir, calibration=calibration, sample=guarded,
            threshold=threshold if threshold is not None else guarded.threshold,
        )
        for kind, model in towers.items():
            ov.save_model(model, staging / f"{kind}.xml")
        guard["calibration"] = {"digest": calibration.digest, "size": calibration.size, "source": calibration.source}
        guard["sample_source"] = guarded.source
        return {"guard": guard, "versions": library_versions(), "exact_manifest": manifest_sha256(exact_dir),
                "build": build_id}

    return cache.ensure(INT8, load=load, build=build)
