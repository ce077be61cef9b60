"""The on-disk layout of a run's checkpoints: atomic switches, completeness, pruning.

``runs/<id>/checkpoints/step-NNNNNNN/`` is a checkpoint: the encoder in sentence-transformers
format, ``trainer_state.pt`` (what exact resumption needs) and, written last, the marker
``checkpoint.json`` ({"step", "files", "resumable"}). A checkpoint is *complete* only when its
marker is there, and *resumable* when it is complete and its trainer state is there too.
It is written as ``.step-NNNNNNN.partial`` — every file and the directory fsynced — then
renamed into place in one step and the parent fsynced, so a kill at any moment leaves
either the old set of complete checkpoints or the new one, plus leftovers that
`clean` removes. Nothing here imports torch: the launcher and the disk accounting of runs
(`hybtui.runs.disk`) use it outside training.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from hybtui.durable import fsync_path

CHECKPOINTS = "checkpoints"
MARKER = "checkpoint.json"
TRAINER_STATE = "trainer_state.pt"
#: Staged checkpoints (".step-N.partial") and replaced ones on their way out (".step-N.old").
PARTIAL, OLD = ".partial", ".old"


def path_for(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:07d}"


def staging_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{PARTIAL}")


def step_of(path: Path) -> int:
    return int(path.name.split("-")[-1])


def read_marker(path: Path) -> dict | None:
    """The marker of a complete checkpoint, or None (incomplete, or not a checkpoint)."""
    try:
        marker = json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("step") == step_of(path) else None


def is_resumable(path: Path) -> bool:
    marker = read_marker(path)
    return bool(marker and marker.get("resumable") and (Path(path) / TRAINER_STATE).is_file())


def step_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in (Path(run_dir) / CHECKPOINTS).glob("step-*[0-9]") if p.is_dir())


def complete(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    return [p for p in step_dirs(run_dir) if read_marker(p)]


def latest_resumable(run_dir: Path) -> Path | None:
    """The newest complete checkpoint that a run can resume from (it has its trainer state)."""
    found = [p for p in step_dirs(run_dir) if is_resumable(p)]
    return found[-1] if found else None


# ---------------------------------------------------------------- durable writes


def seal(staging: Path, step: int, resumable: bool) -> None:
    """Make a staged checkpoint durable: fsync every file, write the marker last, fsync the dirs."""
    files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    for name in files:
        fsync_path(staging / name)
    marker = staging / MARKER
    marker.write_text(json.dumps({"step": step, "files": files, "resumable": resumable}) + "\n")
    fsync_path(marker)
    for directory in sorted({(staging / name).parent for name in files} | {staging}, reverse=True):
        fsync_path(directory)


def switch_into_place(staging: Path, path: Path) -> None:
    """Rename the sealed `staging` to `path` atomically and durably. An incomplete `path`
    (never a complete one: callers keep those) is moved aside first, then removed."""
    aside = path.with_name(f".{path.name}{OLD}")
    if path.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(path, aside)
    os.replace(staging, path)
    fsync_path(path.parent)
    shutil.rmtree(aside, ignore_errors=True)


def _rewrite_marker(path: Path, **changes) -> None:
    """Replace a checkpoint's marker atomically (write, fsync, rename, fsync the dir)."""
    marker = {**read_marker(path), **changes}
    tmp = path / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(marker) + "\n")
    fsync_path(tmp)
    os.replace(tmp, path / MARKER)
    fsync_path(path)


# ---------------------------------------------------------------- cleaning and pruning

#: Told before a complete checkpoint's files go, so no record points at deleted files.
Forget = Callable[[int, Path], None]


def clean(run_dir: Path, resume_step: int) -> list[Path]:
    """Remove what a start or resume from `resume_step` must not see: staged and half-replaced
    directories, incomplete checkpoints, and every checkpoint newer than the resume point or
    not resumable (from step 0: all of them). Returns what was removed."""
    stale = [p for p in step_dirs(run_dir) if step_of(p) > resume_step or not is_resumable(p)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return drop_staging(run_dir) + stale


def drop_staging(run_dir: Path) -> list[Path]:
    """Remove staged and half-replaced directories: never resumable, and a failed save's
    staging holds the space that recording the failure needs. Returns what was removed."""
    removed = [p for p in (Path(run_dir) / CHECKPOINTS).glob(".step-*") if p.name.endswith((PARTIAL, OLD))]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def prune_older(run_dir: Path, keep: int, forget: Forget) -> list[Path]:
    """Keep the newest max(1, keep) complete checkpoints (the newest is the resume point)."""
    older = complete(run_dir)[: -max(1, keep)]
    for path in older:
        forget(step_of(path), path)
        shutil.rmtree(path)
    return older


def finish(run_dir: Path, keep: int, forget: Forget) -> None:
    """A finished run needs no resume point: drop every trainer state, keeping the final
    encoder(s); with `keep` 0 no model is kept at all (its results are in the store)."""
    if keep == 0:
        for path in complete(run_dir):
            forget(step_of(path), path)
            shutil.rmtree(path)
        return
    for path in complete(run_dir):
        drop_trainer_state(path)


def drop_trainer_state(path: Path) -> None:
    """Make a checkpoint a plain encoder (marked not resumable first)."""
    state = path / TRAINER_STATE
    if not state.exists():
        return
    _rewrite_marker(path, resumable=False, files=[f for f in read_marker(path)["files"] if f != TRAINER_STATE])
    state.unlink()
