"""Saving a checkpoint with what exact resumption needs, and restoring that state.

The layout on disk, its atomic switch and its pruning are `hybtui.training.checkpoint`,
which imports no torch; this module writes and reads the torch side: the encoder, the
optimizer moments, the schedule and the RNG states.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from hybtui import faults
from hybtui.config import RunConfig
from hybtui.modeling.encoder import Encoder
from hybtui.training import checkpoint as checkpoints


def save_checkpoint(path: Path, encoder: Encoder, optimizer, scheduler, step: int, config: RunConfig) -> Path:
    """Model (sentence-transformers format) + what exact resumption needs, switched into
    place atomically (`hybtui.training.checkpoint`). `optimizer` None: a final checkpoint, which no
    step follows, so it needs no optimizer moments (twice the model's size)."""
    if checkpoints.read_marker(path):
        # Saving step N again while a complete step-N exists: a resume from N that saves N
        # again (the final checkpoint after a crash in the final evaluation, a cancel right
        # after resuming). The state is the one restored from it, so the existing
        # checkpoint is kept — removing it first would open a window with no resume point.
        return path
    staging = checkpoints.staging_path(path)
    if staging.exists():
        shutil.rmtree(staging)
    encoder.save(staging)
    faults.point("checkpoint-staging", step)
    state = {
        "step": step,
        "scheduler": scheduler.state_dict(),
        # Dropout is the only randomness outside the sampler (a pure function of seed and step).
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    torch.save(state, staging / checkpoints.TRAINER_STATE)
    (staging / "run_config.json").write_text(config.to_json())
    checkpoints.seal(staging, step, resumable=True)
    faults.point("checkpoint-switch", step)
    checkpoints.switch_into_place(staging, path)
    return path


def restore_state(path: Path, optimizer, scheduler) -> int:
    """Optimizer moments, schedule and RNG states of checkpoint `path`; its step."""
    state = torch.load(path / checkpoints.TRAINER_STATE, map_location="cpu", weights_only=True)
    if "optimizer" in state:  # a final checkpoint has none: no step follows it
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["step"]
