"""InfoNCE with in-batch negatives: the contrastive loss every sampler trains with."""

from __future__ import annotations

import torch


class InfoNCELoss(torch.nn.Module):
    """Cross-entropy over cos / τ: query i's positive is passage `offset + i`; every other
    passage (other pairs, other ranks, hard negatives) is a negative. The symmetric term
    adds passage → query over the queries gathered alongside."""

    def __init__(self, temperature: float = 0.05, symmetric: bool = False):
        super().__init__()
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(
        self,
        queries: torch.Tensor,
        passages: torch.Tensor,
        offset: int = 0,
        all_queries: torch.Tensor | None = None,
        positives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        labels = torch.arange(len(queries), device=queries.device) + offset
        loss = torch.nn.functional.cross_entropy(queries @ passages.T / self.temperature, labels)
        if self.symmetric:
            own = passages[labels] if positives is None else positives
            pool = queries if all_queries is None else all_queries
            loss = (loss + torch.nn.functional.cross_entropy(own @ pool.T / self.temperature, labels)) / 2
        return loss
