"""The runtime cache: content keys, sha-verified manifests, and builds made once.

Layout (``RUNTIME_CACHE_DIR``)::

    <key>/fp32/      exact IR, manifest.json (checkpoint digest, library versions, sha256 of every file)
    <key>/bf16w/     the exact IR with its matmul weights in bf16; its manifest names the exact one's
    <key>/int8/      NNCF int8 IR; its manifest names the exact one's and holds the guard's figures
    <key>/compiled/<build>-<precision>-<streams>x<threads>/
                     {image,text}.blob exported by OpenVINO; its manifest names the IR's

``<key>`` hashes the checkpoint files' contents and the openvino, nncf, torch
and transformers versions. Every build is checked before it is used: each
file against the sha256 its manifest recorded, and the manifest against what
it must have been made from (the checkpoint's digest, the exact IR's
manifest, the compile settings). A build that fails the check is made again,
never served: a build of another checkpoint copied under this key, or a
compiled blob with flipped bytes, is rebuilt like a missing one.

A build is written to a staging directory beside its target and renamed
into place while its target's lock is held (an ``flock`` on
``.<name>.lock``): of workers cold-starting together on an empty cache one
builds and the others wait, then read its build. The staging directories of
a build that was killed are removed by the next one (``sweep_staging``).

A serving load may fall back (``RuntimeCache(fallback=True)``): where the
cache cannot be read or written (read-only, unreadable, full, replaced by a
file), its builds are made in a private temporary directory for this load
only and ``problem`` says why; health reports it.
"""

import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

Manifest = dict[str, Any]
T = TypeVar("T")

MANIFEST = "manifest.json"
COMPILED_DIR = "compiled"
STAGING_PREFIX = ".building-"
# Staging directories named by an older release carry no build name, so no
# lock says whether their builder still runs: they go once this old.
UNNAMED_STAGING_MAX_AGE_SECONDS = 3600.0
# How often a worker waiting for another's build says so in the log.
LOCK_NOTICE_SECONDS = 30.0


class RuntimeCacheError(Exception):
    """A cached build is missing, does not match its manifest, or was made from something else."""


# Keys and integrity


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for package in ("openvino", "nncf", "torch", "transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


_digests: dict[str, tuple[tuple[tuple[str, int, int], ...], str]] = {}


def checkpoint_digest(checkpoint: str | os.PathLike[str]) -> str:
    """sha256 over the names and contents of the checkpoint's files.

    Remembered per process while no file's size or mtime changes: a worker
    asks several times while it loads, and hashing 600 MB takes a second.
    """
    files = sorted(path for path in Path(checkpoint).iterdir() if path.is_file() and not path.name.startswith("."))
    stamp = tuple((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    remembered = _digests.get(str(checkpoint))
    if remembered and remembered[0] == stamp:
        return remembered[1]
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    _digests[str(checkpoint)] = (stamp, digest.hexdigest())
    return digest.hexdigest()


def cache_key(checkpoint: str | os.PathLike[str]) -> str:
    payload = json.dumps({"checkpoint": checkpoint_digest(checkpoint), "versions": library_versions()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def build_dir(cache_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str]) -> Path:
    return Path(cache_dir) / cache_key(checkpoint)


def write_manifest(directory: Path, extra: Manifest | None = None) -> None:
    files = {
        str(path.relative_to(directory)): file_sha256(path)
        for path in sorted(directory.rglob("*")) if path.is_file() and path.name != MANIFEST
    }
    (directory / MANIFEST).write_text(json.dumps({"files": files, **(extra or {})}, indent=1, sort_keys=True))


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """The build's manifest as recorded (its files unchecked); RuntimeCacheError when unreadable."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest["files"], dict):
            raise TypeError("not a manifest")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeCacheError(f"{directory}: no readable manifest ({exc.__class__.__name__})") from exc
    return manifest


def verify(directory: str | os.PathLike[str], *, expected: Manifest | None = None) -> Manifest:
    """The manifest of a build whose every file matches it and which records
    ``expected`` (e.g. the checkpoint digest it was made from); else RuntimeCacheError."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    check_made_from(directory, manifest, expected or {})
    for name, recorded in manifest["files"].items():
        path = directory / name
        try:
            matches = path.is_file() and file_sha256(path) == recorded
        except OSError:
            matches = False
        if not matches:
            raise RuntimeCacheError(f"{path} is missing or does not match its recorded sha256")
    return manifest


def check_made_from(directory: Path, manifest: Manifest, expected: Manifest) -> None:
    """RuntimeCacheError unless ``manifest`` records each of ``expected``'s fields as it is."""
    for field, value in expected.items():
        if manifest.get(field) != json.loads(json.dumps(value)):
            raise RuntimeCacheError(f"{directory} was made from something else ({field} differs)")


def manifest_sha256(directory: Path) -> str:
    """What a derived build records of the build it was made from."""
    try:
        return file_sha256(directory / MANIFEST)
    except OSError as exc:
        raise RuntimeCacheError(f"{directory}: no readable manifest ({exc.__class__.__name__})") from exc


# Locks, staging and publishing


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextmanager
def build_lock(target: Path, *, wait: bool = True) -> Iterator[bool]:
    """Holds the lock of ``target``'s build, across processes (``flock``: the
    kernel releases it when its holder dies). Yields whether it is held: with
    ``wait=False``, False at once when another holds it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(target), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            _wait_for_lock(handle, target)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_for_lock(handle: Any, target: Path) -> None:
    logger.info("Waiting for another process's build of %s.", target)
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() - started > LOCK_NOTICE_SECONDS:
                logger.info("Still waiting for another process's build of %s.", target)
                started = time.monotonic()
            time.sleep(0.05)


def staging_dir(target: Path) -> Path:
    """A fresh directory beside ``target`` to build it in (named after it and this process)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f"{STAGING_PREFIX}{target.name}.{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def _staged_build(path: Path) -> str | None:
    """The build a staging directory was for, or None for an older release's unnamed one."""
    name = path.name.removeprefix(STAGING_PREFIX)
    return name.rpartition(".")[0] or None


def sweep_staging(parent: Path, *, held: str | None = None) -> list[Path]:
    """Remove the staging directories in ``parent`` that no running build owns; the removed.

    A build holds its target's lock for as long as its staging directory
    lives, so a staging directory whose target's lock is free was left by a
    build that was killed; ``held`` names a build whose lock the caller
    holds (its staging directories are all stale). An older release's
    unnamed ones go once they are ``UNNAMED_STAGING_MAX_AGE_SECONDS`` old.
    """
    removed: list[Path] = []
    try:
        stale = sorted(path for path in parent.glob(f"{STAGING_PREFIX}*") if path.is_dir())
    except OSError:
        return removed
    for path in stale:
        name = _staged_build(path)
        if name is None:
            try:
                old = time.time() - path.stat().st_mtime > UNNAMED_STAGING_MAX_AGE_SECONDS
            except OSError:
                continue
            if old:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        if name == held:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            continue
        try:
            with build_lock(parent / name, wait=False) as free:
                if free:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        except OSError:  # a cache it may not write: nothing to sweep there
            return removed
    if removed:
        logger.info("Removed %d staging directories of builds that did not finish: %s", len(removed),
                    ", ".join(path.name for path in removed))
    return removed


def publish(staging: Path, target: Path) -> None:
    """Move a finished build into place (under ``target``'s lock): one rename; a
    previous build there (one that failed its check) is moved aside first and removed."""
    aside = None
    if _exists(target):
        aside = target.parent / f"{STAGING_PREFIX}{target.name}.{os.getpid()}-replaced-{secrets.token_hex(4)}"
        os.rename(target, aside)
    os.rename(staging, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# One checkpoint's builds


class RuntimeCache:
    """One checkpoint's builds in the cache directory ``directory``.

    ``ensure`` answers a verified build, made at most once: the first process
    to miss it builds it under its lock, the others wait and read it. With
    ``fallback`` (a serving load), a cache that cannot be read or written
    does not stop the load: the build is made again in a private temporary
    directory, this load's builds stay there until ``close()``, and
    ``problem`` says what the cache refused. Without it (the build command),
    such a cache is an error.
    """

    def __init__(self, directory: str | os.PathLike[str], checkpoint: str | os.PathLike[str], *,
                 fallback: bool = False):
        self.directory = Path(directory)
        self.checkpoint = str(checkpoint)
        self.key = cache_key(checkpoint)
        self.fallback = fallback
        self.problem: str | None = None
        self._scratch: Path | None = None

    @classmethod
    def of(cls, cache: "str | os.PathLike[str] | RuntimeCache", checkpoint: str | os.PathLike[str]) -> "RuntimeCache":
        """``cache`` itself, or the strict cache of a directory."""
        return cache if isinstance(cache, RuntimeCache) else cls(cache, checkpoint)

    @property
    def root(self) -> Path:
        """Where this checkpoint's builds are read and written now."""
        return self._scratch if self._scratch is not None else self.directory / self.key

    def ensure(self, name: str, *, load: Callable[[Path], T], build: Callable[[Path], Manifest]) -> tuple[Path, T]:
        """The build ``name`` (a path under the key) and what ``load`` read of it.

        ``load(directory)`` checks a build and reads it, raising
        RuntimeCacheError for one it must not trust; ``build(staging)``
        writes a new one and returns its manifest's fields.
        """
        target = self.root / name
        try:
            return target, load(target)
        except RuntimeCacheError as problem:
            if _exists(target):
                logger.warning("Rebuilding %s: %s", name, problem)
        try:
            return target, self._build(target, load, build)
        except Exception as exc:
            if not self.fallback or self._scratch is not None:
                raise
            self._fall_back(exc)
        target = self.root / name
        return target, self._build(target, load, build)

    def _build(self, target: Path, load: Callable[[Path], T], build: Callable[[Path], Manifest]) -> T:
        with build_lock(target):
            try:
                return load(target)  # another process built it while this one waited
            except RuntimeCacheError:
                pass
            sweep_staging(target.parent, held=target.name)
            staging = staging_dir(target)
            try:
                extra = build(staging)
                write_manifest(staging, extra)
                publish(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return load(target)

    def _fall_back(self, exc: Exception) -> None:
        self.problem = (
            f"The runtime cache {self.directory} cannot be used ({exc.__class__.__name__}: {exc}): this process "
            "built its models in a temporary directory, and a process started later builds them again."
        )
        logger.warning("%s", self.problem)
        self._scratch = Path(tempfile.mkdtemp(prefix="clipcheck-runtime-")) / self.key

    def close(self) -> None:
        """Remove this load's temporary builds (the compiled models live on in memory)."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch.parent, ignore_errors=True)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # not even readable
        return False
