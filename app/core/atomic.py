"""Crash-safe file writes (temp file in the same folder, fsync, os.replace) and sha256 digests."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.core.errors import ExportError

_HINTS = {
    errno.ENOSPC: "free some disk space or choose another folder",
    errno.EDQUOT: "free some disk space or choose another folder",
    errno.EROFS: "the disk is read-only: choose a writable folder",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another folder",
    errno.ENOENT: "the folder does not exist: create it or choose another one",
}


def describe_os_error(action: str, path: str | os.PathLike, exc: OSError) -> str:
    """One line naming what failed, the system's reason, and how to fix it."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1, "check the folder and the disk")
    return f"cannot {action} {os.fspath(path)}: {reason}; {hint}"


def export_error(action: str, path: str | os.PathLike, exc: OSError) -> ExportError:
    """An ExportError for an OSError, with a one-line message (see ``describe_os_error``)."""
    return ExportError(describe_os_error(action, path, exc))


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on Windows, where os.replace is enough.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that the file is either complete or untouched.

    The bytes go to a temporary file in the same folder, which is fsynced and then renamed over
    ``path``. On failure the temporary file is removed and any earlier ``path`` is intact.

    Raises:
        ExportError: when the folder is missing, read-only or full.
    """
    target = Path(path)
    folder = target.parent
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as exc:
        raise export_error("write", target, exc) from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    _fsync_dir(folder)
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text (see ``atomic_write_bytes``)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON with a trailing newline."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Atomically write a BGR (or grey) uint8/uint16 image as PNG.

    Raises:
        ExportError: when the image cannot be encoded or the file cannot be written.
    """
    ok, buf = False, None
    if image.dtype in (np.uint8, np.uint16) and image.ndim in (2, 3):
        ok, buf = cv2.imencode(".png", image)
    if not ok or buf is None:
        raise ExportError(
            f"cannot encode {os.fspath(path)} as PNG: expected a uint8 image (H, W[, 3]), "
            f"got dtype {image.dtype} shape {image.shape}"
        )
    return atomic_write_bytes(path, buf.tobytes())


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 digest of a file, read in chunks.

    Raises:
        OSError: when the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
