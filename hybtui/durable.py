"""Writes that survive a crash: a file or directory flushed to disk before it is relied on.

An atomic switch (write, fsync, rename, fsync the directory) needs this wherever hybtui
publishes files a kill must not leave half-written: checkpoints, the offline model, a grid's
report, an evaluation's per-query scores.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` into a temporary file of this writer's own, flushed, then renamed over ``path``
    (and the folder flushed): readers see the old file or the new one, never a part, however
    many writers publish ``path`` at once."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
