"""A directory that refuses what a read-only, full or unreadable filesystem refuses.

Tests run as root here, where permissions refuse nothing, and mounting a
small or read-only filesystem needs privileges a test cannot count on. So
the refusals are made at Python's filesystem calls (``open``, ``os.mkdir``,
``os.rename``, ``os.stat``, ...) for paths under one directory, with the
errno the kernel would give: read-only refuses every change (EROFS); full
creates empty files but no directory and no byte (ENOSPC); unreadable
refuses everything below the directory (EACCES). Native code (OpenVINO
writing IR) is not refused; every write the runtime cache makes itself is.
"""

import builtins
import errno
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from pytest import MonkeyPatch

READ_ONLY = "read-only"
FULL = "full"
UNREADABLE = "unreadable"
FAULTS = (READ_ONLY, FULL, UNREADABLE)


class _FullFile:
    """A file opened for writing on a full disk: opening worked, the first byte does not."""

    def __init__(self, handle: Any, path: str):
        self._handle = handle
        self._path = path

    def write(self, data: Any) -> int:
        if len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)
        return 0

    def __enter__(self) -> "_FullFile":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._handle.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@contextmanager
def filesystem_fault(root: str | os.PathLike[str], fault: str) -> Iterator[None]:
    """Within the block, paths under ``root`` (and ``root`` itself) behave as on a ``fault`` filesystem."""
    root_path = os.path.realpath(root)

    def under(path: Any) -> bool:
        if isinstance(path, int):
            return False
        with suppress(TypeError, ValueError):
            real = os.path.realpath(os.fspath(path))
            return real == root_path or real.startswith(root_path + os.sep)
        return False

    def refuse(code: int, path: Any) -> OSError:
        return OSError(code, os.strerror(code), os.fspath(path))

    originals = {name: getattr(os, name) for name in ("mkdir", "rename", "replace", "unlink", "rmdir", "stat",
                                                      "scandir", "listdir", "open")}
    original_open = builtins.open

    def writes(mode: str) -> bool:
        return any(flag in mode for flag in "wax+")

    def opened(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if under(file):
            if fault == UNREADABLE or (fault == READ_ONLY and writes(mode)):
                raise refuse(errno.EACCES if fault == UNREADABLE else errno.EROFS, file)
            if fault == FULL and writes(mode):
                return _FullFile(original_open(file, mode, *args, **kwargs), os.fspath(file))
        return original_open(file, mode, *args, **kwargs)

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if under(path) and (fault == UNREADABLE or (fault == READ_ONLY and writing)):
            raise refuse(errno.EACCES if fault == UNREADABLE else errno.EROFS, path)
        return originals["open"](path, flags, *args, **kwargs)

    def changing(name: str) -> Any:
        refused = {READ_ONLY: errno.EROFS, UNREADABLE: errno.EACCES, **({FULL: errno.ENOSPC} if name == "mkdir" else {})}

        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            targets = [path, *(arg for arg in args[:1] if name in ("rename", "replace"))]
            if any(under(target) for target in targets) and fault in refused:
                raise refuse(refused[fault], path)
            return originals[name](path, *args, **kwargs)
        return call

    def reading(name: str) -> Any:
        def call(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            if fault == UNREADABLE and under(path) and (name != "stat" or os.path.realpath(path) != root_path):
                raise refuse(errno.EACCES, path)
            return originals[name](path, *args, **kwargs)
        return call

    with MonkeyPatch.context() as patch:
        patch.setattr(builtins, "open", opened)
        patch.setattr(io, "open", opened)
        patch.setattr(os, "open", os_open)
        for name in ("mkdir", "rename", "replace", "unlink", "rmdir"):
            patch.setattr(os, name, changing(name))
        for name in ("stat", "scandir", "listdir"):
            patch.setattr(os, name, reading(name))
        yield


def tree_files(root: str | os.PathLike[str]) -> list[Path]:
    return sorted(path for path in Path(root).rglob("*") if path.is_file())
