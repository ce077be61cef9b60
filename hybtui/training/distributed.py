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

    def device_of(self, device: torch.device) -> torch.device:
        """Each rank of a GPU group on its own GPU: ``cuda`` means ``cuda:LOCAL_RANK`` (the
        group's processes see exactly the group's GPUs)."""
        if not self.active or device.type != "cuda" or device.index is not None:
            return device
        local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(local)
        return local

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether any rank raises `flag`: a stop all ranks agree on, at the same step (a rank
        that stopped alone would leave the others waiting in a collective for ever)."""
        if not self.active:
            return flag
        value = torch.tensor([1 if flag else 0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

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


#: What a collective raises on the ranks that remain when a rank of the group dies (gloo's
#: and NCCL's words; torch's own DistError types are recognised by type).
PEER_LOSS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL", "remote process")


def is_peer_loss(exc: BaseException) -> bool:
    """Whether a failure is the loss of another rank (a crash of the group, resumable from
    its last checkpoint) rather than this rank's own error."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    return isinstance(exc, dist.DistError) or any(words in str(exc) for words in PEER_LOSS)


#: One process, no data parallelism (the default where no torchrun environment is set).
SINGLE_PROCESS = DistContext()
