"""Writing output files so that a crash never leaves a half-written one behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgewise.errors import EdgewiseError


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` to a temporary file beside `path`, fsync it, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike, option: str) -> None:
    """One line, before any long work, when `path` could not be written as a file."""
    path = Path(path)
    if path.is_dir():
        raise EdgewiseError(f"{option} {path}: is a folder; give a file name")
    folder = path.parent
    while not folder.exists():         # write_atomic makes the missing folders
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise EdgewiseError(f"{option} {path}: cannot write there ({folder} is not a writable folder)")
