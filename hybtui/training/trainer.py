"""The training loop: InfoNCE with in-batch negatives over mono / cross / hybrid batches.

One optimizer step consumes one global batch from the sampler (a pure function of
seed and step). Under data parallelism (`torchrun`) each rank encodes its slice and
the passages of all ranks are gathered *with gradient*, so every query sees the whole
global batch as negatives and the averaged gradients equal single-process training on
that batch. GradCache computes the same full-batch loss in chunks, so batch 100 fits
in little memory; gradient accumulation instead splits the batch into micro-batches
(each with its own, smaller, set of negatives).

The trainer reports through `Events` and never imports the store or the UI.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hybtui import faults
from hybtui.training import checkpoint as checkpoints
from hybtui.evaluation import evaluate
from hybtui.modeling import encoder as models
from hybtui.config import RunConfig
from hybtui.data import benchmarks, sources
from hybtui.data.training import TrainingSet, load_training_sets, split_validation
from hybtui.errors import HybtuiError
from hybtui.results import ResultRow
from hybtui.training.sampling import Batch, BatchSampler, shard, validate_sampler

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class StepReport:
    step: int  # 1-based: the number of optimizer steps done
    loss: float
    lr: float
    grad_norm: float
    pairs_per_s: float
    batch_type: str
    dataset: str
    #: mono: {"en": B}; cross: {"en-de": n, ...}
    languages: dict[str, int]
    seconds: float


class Events:
    """What a trainer tells the outside world; subclasses override what they need."""

    def on_start(self, total_steps: int, start_step: int) -> None: ...

    def on_step(self, report: StepReport) -> None: ...

    def on_validation(self, step: int, loss: float) -> None: ...

    def on_eval(self, step: int, rows: list[ResultRow], final: bool) -> None: ...

    def before_checkpoint(self, step: int) -> None:
        """Everything of steps ≤ `step` must be recorded before checkpoint `step` becomes
        visible: a resume from it never recomputes those steps."""

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_checkpoint_removed(self, step: int, path: Path) -> None:
        """Checkpoint `step` is about to be deleted (pruned): forget it before its files go."""

    def on_message(self, text: str) -> None: ...


class Tee(Events):
    """Every event to several listeners (e.g. the store and a console display)."""

    def __init__(self, *listeners: Events):
        self.listeners = listeners

    def _each(self, name: str, *args) -> None:
        for listener in self.listeners:
            getattr(listener, name)(*args)

    def on_start(self, *args) -> None:
        self._each("on_start", *args)

    def on_step(self, *args) -> None:
        self._each("on_step", *args)

    def on_validation(self, *args) -> None:
        self._each("on_validation", *args)

    def on_eval(self, *args) -> None:
        self._each("on_eval", *args)

    def before_checkpoint(self, *args) -> None:
        self._each("before_checkpoint", *args)

    def on_checkpoint(self, *args) -> None:
        self._each("on_checkpoint", *args)

    def on_checkpoint_removed(self, *args) -> None:
        self._each("on_checkpoint_removed", *args)

    def on_message(self, *args) -> None:
        self._each("on_message", *args)


# ---------------------------------------------------------------- loss


class InfoNCELoss(torch.nn.Module):
    """Cross-entropy over cos / τ: query i's positive is passage `offset + i`; every other
    passage (other pairs, other ranks, hard negatives) is a negative. The symmetric term
    adds passage → query over the queries gathered alongside."""

    def __init__(self, temperature: float = 0.05, symmetric: bool = False):
        super().__init__()
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(self, queries: torch.Tensor, passages: torch.Tensor, offset: int = 0,
                all_queries: torch.Tensor | None = None, positives: torch.Tensor | None = None) -> torch.Tensor:
        labels = torch.arange(len(queries), device=queries.device) + offset
        loss = torch.nn.functional.cross_entropy(queries @ passages.T / self.temperature, labels)
        if self.symmetric:
            own = passages[labels] if positives is None else positives
            pool = queries if all_queries is None else all_queries
            loss = (loss + torch.nn.functional.cross_entropy(own @ pool.T / self.temperature, labels)) / 2
        return loss


# ---------------------------------------------------------------- distributed


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


# ---------------------------------------------------------------- one batch → loss and gradients


@dataclass(frozen=True)
class BatchTexts:
    queries: list[str]
    passages: list[str]
    hard_negatives: list[str] = field(default_factory=list)


def batch_texts(batch: Batch, sets: dict[str, TrainingSet], hard_negatives: int = 1) -> BatchTexts:
    items = sets[batch.dataset].items
    queries, passages, negatives = [], [], []
    for pair in batch.pairs:
        item = items[pair.item]
        queries.append(item.texts[pair.query_lang][0])
        passages.append(item.texts[pair.passage_lang][1])
        negatives += list(item.hard_negatives.get(pair.passage_lang, ()))[:hard_negatives]
    return BatchTexts(queries, passages, negatives)


class _RandomState:
    """Captures the RNG state before a chunk's first forward so GradCache's second
    forward sees the same dropout masks."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def _chunks(n: int, size: int) -> list[slice]:
    size = size if size > 0 else n
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def length_chunks(attention_mask: torch.Tensor, size: int) -> list[tuple[torch.Tensor, int]]:
    """Rows grouped by token length, longest first, `size` per group (0: one group), each
    with the width of its longest row: a group is padded only to its own length."""
    lengths = attention_mask.sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    size = size if size > 0 else len(order)
    return [(rows, int(lengths[rows[0]])) for rows in torch.split(order, size)]


def loss_and_backward(encoder: models.Encoder, texts: BatchTexts, loss_fn: InfoNCELoss,
                      ctx: DistContext = DistContext(), grad_cache_chunk: int = 0,
                      autocast: bool = False, forward_chunk: int = 16) -> float:
    """Full-batch InfoNCE on this rank's slice; gradients land in the encoder's params.

    Texts are encoded in length-sorted groups (`length_chunks`), so short texts are not
    padded to the longest one of the batch — the loss still sees the whole batch.
    Without GradCache every group is encoded with gradient. With GradCache
    (`grad_cache_chunk` > 0) embeddings are first computed without gradient, the loss
    is differentiated with respect to them, then each group is re-encoded (with its
    dropout masks replayed) and back-propagated with its cached embedding gradient:
    same loss, same gradients, memory of one group. Returns the global-batch loss
    (mean over ranks).
    """
    device = encoder.device
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)
    q_batch = encoder.tokenize(texts.queries, "query")
    p_batch = encoder.tokenize(texts.passages + texts.hard_negatives, "passage")
    n_local = len(texts.queries)
    size = grad_cache_chunk if grad_cache_chunk > 0 else forward_chunk

    def encode(batch: dict[str, torch.Tensor], rows: torch.Tensor, width: int) -> torch.Tensor:
        with amp:
            return encoder(batch["input_ids"][rows, :width], batch["attention_mask"][rows, :width]).float()

    def encode_all(batch: dict[str, torch.Tensor], parts, states=None) -> torch.Tensor:
        embeddings = []
        for rows, width in parts:
            if states is not None:
                states.append(_RandomState(device))
            embeddings.append(encode(batch, rows, width))
        order = torch.cat([rows for rows, _ in parts])
        return torch.cat(embeddings)[torch.argsort(order)]  # back to batch order

    def global_loss(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        positives, negatives = p[:n_local], p[n_local:]
        all_q = ctx.gather(q)
        all_p = torch.cat([ctx.gather(positives), ctx.gather(negatives)])
        return loss_fn(q, all_p, offset=ctx.rank * n_local, all_queries=all_q, positives=positives)

    q_parts = length_chunks(q_batch["attention_mask"], size)
    p_parts = length_chunks(p_batch["attention_mask"], size)
    if grad_cache_chunk <= 0:
        loss = global_loss(encode_all(q_batch, q_parts), encode_all(p_batch, p_parts))
        loss.backward()
        return _mean_over_ranks(loss.detach(), ctx)

    cached = []
    for batch, parts in ((q_batch, q_parts), (p_batch, p_parts)):
        states: list[_RandomState] = []
        with torch.no_grad():
            reps = encode_all(batch, parts, states)
        cached.append((batch, parts, states, reps.requires_grad_()))
    loss = global_loss(cached[0][3], cached[1][3])
    loss.backward()
    for batch, parts, states, reps in cached:
        for (rows, width), state in zip(parts, states):
            state.restore()
            (encode(batch, rows, width) * reps.grad[rows]).sum().backward()
    return _mean_over_ranks(loss.detach(), ctx)


def _mean_over_ranks(loss: torch.Tensor, ctx: DistContext) -> float:
    if ctx.active:
        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= ctx.world_size
    return float(loss)


# ---------------------------------------------------------------- optimizer and schedule


def build_optimizer(encoder: models.Encoder, config: RunConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no decay on biases and norms), linear warmup then linear decay to 0."""
    decay, no_decay = [], []
    for name, p in encoder.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    # The fused kernel makes one pass over parameters and moments (8x faster on CPU for
    # me5-small, whose 96M-row embedding matrix dominates the optimizer step).
    fused = encoder.device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, fused=fused)
    warmup, total = config.warmup_steps, config.steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, encoder: models.Encoder, optimizer, scheduler, step: int,
                    config: RunConfig) -> Path:
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


# ---------------------------------------------------------------- the trainer


@dataclass
class TrainingResult:
    status: str  # "finished" or "cancelled"
    step: int
    final_rows: list[ResultRow]
    model_dir: Path | None


def prepare_data(config: RunConfig, data_dir: Path | None) -> tuple[list[TrainingSet], list[TrainingSet]]:
    """Training and validation sets, with everything that can be wrong with the data and
    the sampler checked — before any model loads or any run is recorded."""
    sets = load_training_sets(list(config.train), data_dir)
    splits = [split_validation(s, config.validation_fraction) for s in sets]
    train_sets = [train for train, _ in splits]
    validate_sampler(train_sets, config.sampler, config.batch_size, config.alpha)
    if config.eval:
        benchmarks.parse_eval_spec(list(config.eval))
    return train_sets, [val for _, val in splits if val.items]


class Trainer:
    """Validates everything, then trains `config.steps` steps, evaluating and checkpointing."""

    def __init__(self, config: RunConfig, output_dir: Path, events: Events | None = None,
                 data_dir: Path | None = None):
        self.config = config
        self.output_dir = Path(output_dir)
        self.events = events or Events()
        self.data_dir = sources.data_dir_from_env(data_dir or config.data_dir)
        self._stop = False
        self.device = models.resolve_device(config.device)
        self.train_sets, self.validation_sets = prepare_data(config, self.data_dir)
        self.train_languages = sorted({lang for s in self.train_sets for lang in s.languages})
        self.eval_selections = benchmarks.parse_eval_spec(list(config.eval)) if config.eval else []
        self.ctx = DistContext.from_environment(self.device)
        if config.batch_size % self.ctx.world_size:
            raise HybtuiError(f"--batch-size {config.batch_size} is not divisible by the {self.ctx.world_size} ranks")
        self.sampler = BatchSampler(self.train_sets, config.sampler, config.batch_size, config.seed, config.alpha)

    def request_stop(self) -> None:
        """Finish the current step, checkpoint, and return as cancelled (SIGTERM handler)."""
        self._stop = True

    def _load_encoder(self, resume_from: Path | None) -> models.Encoder:
        c = self.config
        spec = models.encoder_spec(str(resume_from) if resume_from else c.model, c.pooling, c.query_prefix,
                                   c.passage_prefix, c.max_length)
        if not resume_from:
            spec = spec.filled_from(models.spec_for(c.model))
        encoder = models.load_encoder(spec, device=str(self.device), say=self.events.on_message)
        if c.freeze_embeddings:
            encoder.backbone.get_input_embeddings().weight.requires_grad_(False)
        return encoder

    def run(self, resume_from: Path | None = None) -> TrainingResult:
        c = self.config
        torch.manual_seed(c.seed + self.ctx.rank)
        encoder = self._load_encoder(resume_from)
        encoder.train()
        optimizer, scheduler = build_optimizer(encoder, c)
        step = 0
        if resume_from:
            state = torch.load(resume_from / checkpoints.TRAINER_STATE, map_location="cpu", weights_only=True)
            if "optimizer" in state:  # a final checkpoint has none: no step follows it
                optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            if state["cuda_rng"]:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            step = state["step"]
            self.events.on_message(f"resumed from {resume_from} at step {step}")
        if self.ctx.rank == 0:
            for leftover in checkpoints.clean(self.output_dir, step):
                self.events.on_message(f"removed {leftover} (incomplete, or newer than the resume point)")
        loss_fn = InfoNCELoss(c.temperature, c.symmetric)
        sets = {s.name: s for s in self.train_sets}
        params = [p for p in encoder.parameters() if p.requires_grad]
        autocast = c.bf16
        self.events.on_start(c.steps, step)
        while step < c.steps:
            if self._stop:
                self._checkpoint(encoder, optimizer, scheduler, step)
                return TrainingResult("cancelled", step, [], None)
            started = time.perf_counter()
            batch = shard(self.sampler.batch(step), self.ctx.rank, self.ctx.world_size)
            texts = batch_texts(batch, sets)
            loss = 0.0
            micro = _chunks(len(texts.queries), math.ceil(len(texts.queries) / c.grad_accumulation))
            for part in micro:
                part_texts = BatchTexts(texts.queries[part], texts.passages[part],
                                        texts.hard_negatives if len(micro) == 1 else [])
                loss += loss_and_backward(encoder, part_texts, loss_fn, self.ctx, c.grad_cache_chunk,
                                          autocast, c.forward_chunk) / len(micro)
            if len(micro) > 1:
                for p in params:
                    if p.grad is not None:
                        p.grad /= len(micro)
            self.ctx.average_gradients(params)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm))
            lr = scheduler.get_last_lr()[0]
            if not math.isfinite(loss):
                raise HybtuiError(f"training diverged: the loss of step {step + 1} is {loss} (lower --lr, "
                                  f"raise --temperature, or check the data)")
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seconds = time.perf_counter() - started
            self.events.on_step(StepReport(step, loss, lr, grad_norm, c.batch_size / seconds, batch.type,
                                           batch.dataset, _languages(batch), seconds))
            faults.point("step", step)
            if c.eval_every and step % c.eval_every == 0 and step < c.steps:
                self._validate(encoder, loss_fn, step)
                self._evaluate(encoder, step, final=False)
            if c.checkpoint_every and step % c.checkpoint_every == 0 and step < c.steps:
                self._checkpoint(encoder, optimizer, scheduler, step)
        # A zero-step run (a zero-shot baseline) leaves the model as it was: nothing to save.
        final_dir = self._checkpoint(encoder, None, scheduler, step) if step else None
        self._validate(encoder, loss_fn, step)
        faults.point("final-validation")
        rows = self._evaluate(encoder, step, final=True)
        faults.point("final-results")
        if self.ctx.rank == 0:
            checkpoints.finish(self.output_dir, c.keep_checkpoints, self._forget)
        faults.point("finished-prune")
        return TrainingResult("finished", step, rows, final_dir if c.keep_checkpoints else None)

    def _checkpoint(self, encoder, optimizer, scheduler, step: int) -> Path | None:
        """Checkpoint `step` (optimizer None: the final one), then prune the older ones."""
        if self.ctx.rank != 0:
            return None
        faults.point("before-flush", step)
        self.events.before_checkpoint(step)
        faults.point("after-flush", step)
        path = save_checkpoint(checkpoints.path_for(self.output_dir, step), encoder, optimizer, scheduler, step,
                               self.config)
        faults.point("checkpoint-switched", step)
        self.events.on_checkpoint(step, path)
        checkpoints.prune_older(self.output_dir, self.config.keep_checkpoints, self._forget)
        return path

    def _forget(self, step: int, path: Path) -> None:
        self.events.on_checkpoint_removed(step, path)
        faults.point("checkpoint-prune", step)

    def _validate(self, encoder: models.Encoder, loss_fn: InfoNCELoss, step: int) -> None:
        """Mean InfoNCE over held-out items in fixed monolingual chunks (no dropout)."""
        if not self.validation_sets or self.ctx.rank != 0:
            return
        losses = []
        encoder.eval()
        with torch.inference_mode():
            for s in self.validation_sets:
                for lang in s.languages:
                    pairs = [item.texts[lang] for item in s.items if lang in item.texts]
                    for part in _chunks(len(pairs), self.config.batch_size):
                        chunk = pairs[part]
                        if len(chunk) < 2:
                            continue
                        q = encoder(**encoder.tokenize([p[0] for p in chunk], "query"))
                        p = encoder(**encoder.tokenize([p[1] for p in chunk], "passage"))
                        losses.append(float(loss_fn(q, p)))
        encoder.train()
        if losses:
            self.events.on_validation(step, float(np.mean(losses)))

    def _evaluate(self, encoder: models.Encoder, step: int, final: bool) -> list[ResultRow]:
        if not self.eval_selections or self.ctx.rank != 0:
            return []
        log.info("step %d: %s evaluation", step, "final" if final else "periodic")
        loaded = [benchmarks.load(s, self.data_dir) for s in self.eval_selections]
        limit = self.config.final_eval_max_queries if final else self.config.eval_max_queries
        if limit:
            loaded = [b.max_queries(limit) for b in loaded]
        encoder.eval()
        rows = evaluate.evaluate(encoder, loaded, self.train_languages, self.config.eval_batch_size, self.config.bf16)
        encoder.train()
        self.events.on_eval(step, rows, final)
        return rows


def _languages(batch: Batch) -> dict[str, int]:
    if batch.type == "mono":
        return dict(Counter(p.query_lang for p in batch.pairs))
    return dict(Counter(f"{p.query_lang}-{p.passage_lang}" for p in batch.pairs))
