"""manage.py clip_build_runtime: the OpenVINO models, built ahead of serving.

Converts the checkpoint, quantises it to int8 calibrated on the catalogue's
own photos and texts (the shipped generic set when the catalogue is too
small), compares int8 with float32 on a held-out sample and enables int8
only where the guard passes. See docs/runtime.md.
"""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clipcheck.engine import openvino, runtimes
from clipcheck.engine.checkpoints import CheckpointUnavailable
from clipcheck.engine.clip import local_checkpoint
from clipcheck.engine.families import ModelFamily, checkpoint_family
from clipcheck.engine.lanes import forward_lanes
from clipcheck.services.thresholds import default_threshold
from clipcheck.settings import clip_settings
from listings.management.options import positive_int
from listings.runtime import catalogue_calibration_sets


class Command(BaseCommand):
    help = (
        "Build the OpenVINO runtime ahead of time: the exact model, its int8 build calibrated on the catalogue, "
        "the guard comparing int8 with float32 (verdict agreement >= 99.5%, max score gap <= 0.01) and the "
        "compiled-model cache. Prints the guard's figures; int8 is enabled only where they pass."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--calibration-size", type=positive_int, default=openvino.CALIBRATION_SIZE,
            help=f"Listings to calibrate on (default {openvino.CALIBRATION_SIZE}); as many again are held out "
                 "for the guard.",
        )
        parser.add_argument("--threshold", type=float, help="Verdict threshold of the guard (default: the service's).")
        parser.add_argument("--rebuild", action="store_true", help="Quantise again even if a build for this set exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not runtimes.openvino_available():
            raise CommandError("The openvino package is not installed (pip install -r requirements/base.txt).")
        model = str(clip_settings.MODEL)
        cache_dir = str(clip_settings.RUNTIME_CACHE_DIR)
        threshold = options["threshold"] if options["threshold"] is not None else default_threshold()
        try:
            checkpoint = local_checkpoint(model)
            family = checkpoint_family(checkpoint)
        except CheckpointUnavailable as exc:  # missing, or a checkpoint the service refuses: one line
            raise CommandError(f"The model {model!r} cannot be built: {exc}") from exc
        self.stdout.write(f"Model: {model} ({family.title})")

        started = time.monotonic()
        exact_dir, _ = openvino.ensure_exact_build(checkpoint=checkpoint, cache_dir=cache_dir)
        self.stdout.write(f"Exact model: {exact_dir} ({time.monotonic() - started:.1f}s)")

        sets = catalogue_calibration_sets(checkpoint=checkpoint, count=options["calibration_size"], threshold=threshold)
        calibration, sample = sets if sets else (None, None)
        started = time.monotonic()
        guard = openvino.runtime_build(
            checkpoint=checkpoint, cache_dir=cache_dir, calibration=calibration, sample=sample, threshold=threshold,
            rebuild=options["rebuild"],
        )
        self.guard_report(guard, seconds=time.monotonic() - started)

        lanes = forward_lanes(clip_settings.NUM_THREADS, concurrent=clip_settings.CONCURRENT_ENCODERS)
        dtype = _dtype(family)
        names = ["openvino"] + (["openvino-int8"] if guard["passed"] else [])
        for name in names:  # fills the compiled-model cache for the serving processes
            openvino.load_openvino_runtime(
                checkpoint=checkpoint, int8=name == "openvino-int8", dtype=dtype, lanes=lanes, cache_dir=cache_dir,
                fallback=False,
            )
        if guard["passed"]:
            self.stdout.write(self.style.SUCCESS("int8 enabled: RUNTIME 'auto' serves openvino-int8 on CPUs."))
            return
        message = "int8 refused: its answers differ from float32 beyond the guard; RUNTIME 'auto' serves openvino."
        if str(clip_settings.RUNTIME).strip().lower() == "openvino-int8":
            raise CommandError(message + " RUNTIME is 'openvino-int8': the service will not start with it.")
        self.stdout.write(self.style.WARNING(message))

    def guard_report(self, guard: dict[str, Any], *, seconds: float) -> None:
        """How the int8 build was calibrated and guarded, step by step."""
        self.stdout.write(
            f"int8 calibrated on {guard['calibration']['size']} {guard['calibration']['source']} pairs, "
            f"checked on {guard['pairs']} {guard['sample_source']} pairs at threshold {guard['threshold']:g} "
            f"({seconds:.1f}s)"
        )
        self.stdout.write(
            f"verdict agreement int8 vs float32: {guard['agreement']:.2%} (needed >= "
            f"{openvino.GUARD_MIN_AGREEMENT:.1%})"
        )
        self.stdout.write(
            f"max score gap int8 vs float32: {guard['max_score_gap']:.4f} (needed <= "
            f"{openvino.GUARD_MAX_SCORE_GAP})"
        )
        for step in guard["steps"]:
            self.stdout.write(
                f"  tried {step['step']} (unquantised ops at {step['precision'] or 'the CPU default'}): "
                f"max score gap {step['max_score_gap']:.4f}, agreement {step['agreement']:.2%}"
            )
        self.stdout.write(
            f"int8 layers: {guard['int8_layers']} of {guard['matmul_layers']} matmuls"
            + (f" (kept exact: {', '.join(guard['exact_groups'])})" if guard["exact_groups"] else "")
        )


def _dtype(family: ModelFamily) -> str:
    from clipcheck.engine.clip import resolve_device, resolve_dtype

    return resolve_dtype(clip_settings.DTYPE, resolve_device("cpu"), family)
