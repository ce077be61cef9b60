"""Data parallelism under `torchrun`: each rank encodes its slice of the global batch and
the embeddings of all ranks are gathered *with gradient*, so every query sees the whole
global batch as negatives and the averaged gradients equal single-process training."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, device: torch.device) -> DistContext:
        """Join the process group `torchrun` describes (RANK, WORLD_SIZE), if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """All ranks' rows, concatenated in rank order, differentiable."""
        if not self.active:
            return tensor
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor), dim=0)

    def average_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        if not self.active:
            return
        for p in parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world_size

    def mean(self, loss: torch.Tensor) -> float:
        """The mean of a per-rank loss over all ranks (the loss of the global batch)."""
        if self.active:
            loss = loss.clone()
            dist.all_reduce(loss)
            loss /= self.world_size
        return float(loss)


#: One process, no data parallelism (the default where no torchrun environment is set).
SINGLE_PROCESS = DistContext()
