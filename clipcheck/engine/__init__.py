"""The process-wide CLIP engine: loaded once, shared by every request thread.

This module holds the registry only and never imports torch, so management
commands that don't need the model (migrate, check, ...) stay light. The model
itself lives in ``clipcheck.engine.clip``.

Here, and only here, ``CLIPCHECK`` meets the engine: the engine is built with
the settings' values and the settings it was built from are its key, so a
settings change at run time (tests, a reload) gives the next caller an
engine built for the new values.
"""

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from clipcheck import metrics
from clipcheck.engine.checkpoints import CheckpointUnavailable
from clipcheck.errors import ModelUnavailable
from clipcheck.settings import clip_settings

if TYPE_CHECKING:
    from clipcheck.engine.clip import ClipEngine

logger = logging.getLogger(__name__)

_load_lock = threading.Lock()
_engine: "ClipEngine | None" = None
_engine_key: "EngineConfig | None" = None
_failure: "_LoadFailure | None" = None


@dataclass(frozen=True)
class EngineConfig:
    """What an engine is built with; equal configurations share one engine."""

    model_name: str
    device: str
    dtype: str
    num_threads: int | None
    runtime: str
    concurrent_encoders: bool | None
    runtime_cache_dir: str
    batch_size: int
    batch_wait_ms: float
    text_cache_size: int

    @classmethod
    def from_settings(cls) -> "EngineConfig":
        return cls(
            model_name=str(clip_settings.MODEL),
            device=str(clip_settings.DEVICE),
            dtype=str(clip_settings.DTYPE),
            num_threads=clip_settings.NUM_THREADS,
            runtime=str(clip_settings.RUNTIME),
            concurrent_encoders=clip_settings.CONCURRENT_ENCODERS,
            runtime_cache_dir=str(clip_settings.RUNTIME_CACHE_DIR),
            batch_size=int(clip_settings.BATCH_SIZE),
            batch_wait_ms=float(clip_settings.BATCH_WAIT_MS),
            text_cache_size=int(clip_settings.TEXT_CACHE_SIZE),
        )


@dataclass(frozen=True)
class _LoadFailure:
    key: EngineConfig
    reason: str
    at: float


def get_engine() -> "ClipEngine":
    """The loaded engine for the current settings; loads it on first use.

    Raises ``ModelUnavailable`` when the model cannot be loaded. A failure is
    remembered for ``LOAD_RETRY_SECONDS`` so a broken model path does not
    make every request pay for a new load attempt.
    """
    global _engine, _engine_key, _failure
    key = EngineConfig.from_settings()
    engine = _engine
    if engine is not None and _engine_key == key:
        return engine
    with _load_lock:
        if _engine is not None and _engine_key == key:
            return _engine
        failure = _failure
        if failure and failure.key == key and time.monotonic() - failure.at < clip_settings.LOAD_RETRY_SECONDS:
            raise ModelUnavailable(reason=failure.reason)
        from clipcheck.engine.clip import ClipEngine

        started = time.monotonic()
        try:
            engine = ClipEngine.load(**asdict(key))
        except Exception as exc:
            # A checkpoint that is missing or out of reach is one sentence, not a traceback.
            expected = isinstance(exc, CheckpointUnavailable)
            cause = str(exc) if expected else f"{exc.__class__.__name__}: {exc}"
            reason = f"The CLIP model {key.model_name!r} could not be loaded: {cause}"
            logger.error(reason, exc_info=not expected)
            _engine, _engine_key = None, None
            _failure = _LoadFailure(key=key, reason=reason, at=time.monotonic())
            metrics.MODEL_LOADED.set(0)
            metrics.MODEL_LOAD_FAILURES.inc()
            raise ModelUnavailable(reason=reason) from exc
        logger.info(
            "Loaded %s model %s on %s, runtime %s (%s) in %.1fs",
            engine.model_family.title, key.model_name, engine.device_name, engine.runtime_name, engine.precision, time.monotonic() - started,
        )
        _engine, _engine_key, _failure = engine, key, None
        metrics.MODEL_LOADED.set(1)
        return engine


def engine_status() -> dict[str, Any]:
    """Load state for health checks: never raises.

    ``message`` is the public explanation of a failed load, ``reason`` the
    internal one (path and exception: for the log and staff only).
    ``cache_problem`` says why a loaded runtime serves without its cache
    (internal too: it names the cache's path); None where it used it.
    """
    try:
        engine = get_engine()
    except ModelUnavailable as exc:
        return {
            "model_loaded": False, "model": str(clip_settings.MODEL), "model_family": None, "device": None,
            "dtype": None, "runtime": None, "precision": None, "message": exc.message, "reason": exc.reason,
            "cache_problem": None,
        }
    return {
        "model_loaded": True,
        "model": engine.model_name,
        "model_family": engine.family,
        "device": engine.device_name,
        "dtype": engine.dtype_name,
        "runtime": engine.runtime_name,
        "precision": engine.precision,
        "message": None,
        "reason": None,
        "cache_problem": engine.cache_problem,
    }


def warm_up() -> None:
    """Load the model and run one tiny forward pass before traffic arrives.

    Failures are logged, not raised: the process keeps serving, health
    answers 503 and inference endpoints answer 503 until a load succeeds.
    """
    try:
        get_engine().warm_up()
    except ModelUnavailable:
        pass


def reset_engine() -> None:
    """Forget the loaded model and any remembered failure (tests, reloads)."""
    global _engine, _engine_key, _failure
    with _load_lock:
        _engine, _engine_key, _failure = None, None, None
        metrics.MODEL_LOADED.set(0)
