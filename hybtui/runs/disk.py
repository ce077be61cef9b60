"""What a run occupies on disk, and freeing it once the run has ended.

Shown by `hybtui runs show` and the app, freed by `hybtui runs prune`: the run directory's
bytes, its complete checkpoints and their bytes (leftovers included). Reads the checkpoint
layout (`hybtui.training.checkpoint`), which is torch-free.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hybtui.formatting import human_bytes
from hybtui.training.checkpoint import (
    CHECKPOINTS,
    Forget,
    complete,
    drop_staging,
    drop_trainer_state,
    read_marker,
    step_dirs,
    step_of,
)


@dataclass(frozen=True)
class DiskUsage:
    total: int  # bytes under the run directory
    checkpoints: int  # complete checkpoints
    checkpoint_bytes: int  # bytes under checkpoints/ (leftovers included)

    def describe(self) -> str:
        return (
            f"disk {human_bytes(self.total)} ({self.checkpoints} checkpoint"
            f"{'' if self.checkpoints == 1 else 's'}, {human_bytes(self.checkpoint_bytes)})"
        )


def _files(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            yield Path(directory) / name


def tree_bytes(root: Path) -> int:
    total = 0
    for path in _files(root):
        with contextlib.suppress(FileNotFoundError):  # removed while we walk (a running run prunes)
            total += path.lstat().st_size
    return total


def run_disk_usage(run_dir: Path) -> DiskUsage:
    """What a run occupies on disk, and how much of it is checkpoints."""
    return DiskUsage(tree_bytes(run_dir), len(complete(run_dir)), tree_bytes(Path(run_dir) / CHECKPOINTS))


#: Per-run caches that can always be rebuilt.
CACHES = ("embeddings",)


def free_ended(run_dir: Path, models: bool, forget: Forget) -> int:
    """Free an ended run's space: leftovers, caches, every checkpoint but the newest, and its
    trainer state (`models`: the newest encoder too). Returns the bytes freed."""
    run_dir = Path(run_dir)
    before = tree_bytes(run_dir)
    drop_staging(run_dir)
    doomed = [p for p in step_dirs(run_dir) if not read_marker(p)] + [run_dir / name for name in CACHES]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    kept = complete(run_dir)
    for path in kept if models else kept[:-1]:
        forget(step_of(path), path)
        shutil.rmtree(path)
    if kept and not models:
        drop_trainer_state(kept[-1])
    return before - tree_bytes(run_dir)
