"""One batch → its full-batch InfoNCE loss and gradients, in chunks (GradCache).

GradCache (Gao et al., 2021) computes the loss of the whole batch — every pair's
negatives are all the other passages — with the memory of one chunk: embeddings are
first computed without gradient, the loss is differentiated with respect to them, then
each chunk is encoded again, with the dropout masks of its first pass (`RandContext`),
and back-propagated with its cached embedding gradient. Gradient accumulation instead
splits the batch into micro-batches, each with its own, smaller, set of negatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hybtui.data.training import TrainingData
from hybtui.modeling.encoder import Encoder
from hybtui.training.distributed import SINGLE_PROCESS, DistContext
from hybtui.training.loss import InfoNCELoss
from hybtui.training.sampling import Batch

#: A tokenised side of a batch (queries, or passages and hard negatives) and its
#: length-sorted groups of rows.
Side = tuple[dict[str, torch.Tensor], list[tuple[torch.Tensor, int]]]


@dataclass(frozen=True)
class BatchTexts:
    queries: list[str]
    passages: list[str]
    hard_negatives: list[str] = field(default_factory=list)


def batch_texts(batch: Batch, sets: dict[str, TrainingData], hard_negatives: int = 1) -> BatchTexts:
    return BatchTexts(*sets[batch.dataset].batch_texts(batch.pairs, hard_negatives))


def chunk_slices(n: int, size: int) -> list[slice]:
    """Consecutive slices of `size` over `n` rows (size 0 or less: one slice)."""
    size = size if size > 0 else n
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def length_chunks(attention_mask: torch.Tensor, size: int) -> list[tuple[torch.Tensor, int]]:
    """Rows grouped by token length, longest first, `size` per group (0: one group), each
    with the width of its longest row: a group is padded only to its own length."""
    lengths = attention_mask.sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    size = size if size > 0 else len(order)
    return [(rows, int(lengths[rows[0]])) for rows in torch.split(order, size)]


class RandContext:
    """The RNG state before a group's first forward, replayed for its second forward so
    that GradCache's gradient pass sees the same dropout masks. The replay runs inside
    `torch.random.fork_rng`: the global RNG is left as the first pass left it."""

    def __init__(self, device: torch.device):
        self.devices = [device] if device.type == "cuda" else []
        self.cpu_state = torch.get_rng_state()
        self.device_states = [torch.cuda.get_rng_state(d) for d in self.devices]

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=self.devices, device_type="cuda")
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        for device, state in zip(self.devices, self.device_states):
            torch.cuda.set_rng_state(state, device)

    def __exit__(self, *exc_info) -> None:
        self._fork.__exit__(*exc_info)


def encode_rows(
    encoder: Encoder, batch: dict[str, torch.Tensor], rows: torch.Tensor, width: int, autocast: bool
) -> torch.Tensor:
    """Embeddings of some rows of a tokenised batch, cut to `width` tokens."""
    with torch.autocast(encoder.device.type, dtype=torch.bfloat16, enabled=autocast):
        return encoder(batch["input_ids"][rows, :width], batch["attention_mask"][rows, :width]).float()


def encode_groups(
    encoder: Encoder, side: Side, autocast: bool, states: list[RandContext] | None = None
) -> torch.Tensor:
    """Embeddings of a whole side, group by group, back in batch order; `states` (if given)
    receives each group's RNG state before its forward."""
    batch, groups = side
    embeddings = []
    for rows, width in groups:
        if states is not None:
            states.append(RandContext(encoder.device))
        embeddings.append(encode_rows(encoder, batch, rows, width, autocast))
    order = torch.cat([rows for rows, _ in groups])
    return torch.cat(embeddings)[torch.argsort(order)]


def global_loss(loss_fn: InfoNCELoss, ctx: DistContext, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """This rank's loss against the queries and passages of all ranks: positives of every
    rank first, then the hard negatives of every rank."""
    n_local = len(q)
    positives, negatives = p[:n_local], p[n_local:]
    all_q = ctx.gather(q)
    all_p = torch.cat([ctx.gather(positives), ctx.gather(negatives)])
    return loss_fn(q, all_p, offset=ctx.rank * n_local, all_queries=all_q, positives=positives)


def grad_cache_backward(
    encoder: Encoder, sides: tuple[Side, Side], loss_fn: InfoNCELoss, ctx: DistContext, autocast: bool
) -> torch.Tensor:
    """GradCache: embed without gradient, differentiate the loss with respect to the
    embeddings, then re-encode each group (dropout replayed) with its cached gradient."""
    cached = []
    for side in sides:
        states: list[RandContext] = []
        with torch.no_grad():
            reps = encode_groups(encoder, side, autocast, states)
        cached.append((side, states, reps.requires_grad_()))
    loss = global_loss(loss_fn, ctx, cached[0][2], cached[1][2])
    loss.backward()
    for (batch, groups), states, reps in cached:
        for (rows, width), state in zip(groups, states):
            with state:
                (encode_rows(encoder, batch, rows, width, autocast) * reps.grad[rows]).sum().backward()
    return loss


def loss_and_backward(
    encoder: Encoder,
    texts: BatchTexts,
    loss_fn: InfoNCELoss,
    ctx: DistContext = SINGLE_PROCESS,
    grad_cache_chunk: int = 0,
    autocast: bool = False,
    forward_chunk: int = 16,
) -> float:
    """Full-batch InfoNCE on this rank's slice; gradients land in the encoder's params.

    Texts are encoded in length-sorted groups (`length_chunks`), so short texts are not
    padded to the longest one of the batch — the loss still sees the whole batch.
    Without GradCache every group is encoded with gradient; with GradCache
    (`grad_cache_chunk` > 0) see `grad_cache_backward`: same loss, same gradients,
    memory of one group. Returns the global-batch loss (mean over ranks).
    """
    size = grad_cache_chunk if grad_cache_chunk > 0 else forward_chunk
    q_batch = encoder.tokenize(texts.queries, "query")
    p_batch = encoder.tokenize(texts.passages + texts.hard_negatives, "passage")
    queries = (q_batch, length_chunks(q_batch["attention_mask"], size))
    passages = (p_batch, length_chunks(p_batch["attention_mask"], size))
    if grad_cache_chunk > 0:
        loss = grad_cache_backward(encoder, (queries, passages), loss_fn, ctx, autocast)
    else:
        q = encode_groups(encoder, queries, autocast)
        loss = global_loss(loss_fn, ctx, q, encode_groups(encoder, passages, autocast))
        loss.backward()
    return ctx.mean(loss.detach())
