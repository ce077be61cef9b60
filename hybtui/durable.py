"""Writes that survive a crash: a file or directory flushed to disk before it is relied on.

An atomic switch (write, fsync, rename, fsync the directory) needs this wherever hybtui
publishes files a kill must not leave half-written: checkpoints and the offline model.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
