"""The training loop: InfoNCE with in-batch negatives over mono / cross / hybrid batches.

One optimizer step consumes one global batch from the sampler (a pure function of
seed and step); each rank trains on its slice (`hybtui.training.distributed`), and
the loss of a batch is computed whole, in chunks if asked (`hybtui.training.grad_cache`).
The trainer reports through `Events` and never imports the store or the UI.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hybtui import faults
from hybtui.config import RunConfig
from hybtui.data import benchmarks, sources
from hybtui.data.checks import prepare_data
from hybtui.errors import HybtuiError
from hybtui.evaluation import evaluate, per_query
from hybtui.modeling import encoder as models
from hybtui.modeling import precision as precisions
from hybtui.results import ResultRow
from hybtui.training import checkpoint as checkpoints
from hybtui.training.callbacks import Events, StepReport
from hybtui.training.distributed import DistContext
from hybtui.training.grad_cache import BatchTexts, batch_texts, chunk_slices, loss_and_backward
from hybtui.training.loss import InfoNCELoss
from hybtui.training.optimizer import build_optimizer
from hybtui.training.sampling import Batch, BatchSampler, shard
from hybtui.training.trainer_state import restore_state, save_checkpoint


@dataclass
class TrainingResult:
    status: str  # "finished" or "cancelled"
    step: int
    final_rows: list[ResultRow]
    model_dir: Path | None


class Trainer:
    """Validates everything, then trains `config.steps` steps, evaluating and checkpointing."""

    def __init__(self, config: RunConfig, output_dir: Path, events: Events | None = None, data_dir: Path | None = None):
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
        self.device = self.ctx.device_of(self.device)
        #: bf16 autocast or fp32, resolved for this device (`auto`), or refused where bf16 is not native
        self.precision = precisions.resolve(config.precision, str(self.device))
        if config.batch_size % self.ctx.world_size:
            raise HybtuiError(f"--batch-size {config.batch_size} is not divisible by the {self.ctx.world_size} ranks")
        self.sampler = BatchSampler(self.train_sets, config.sampler, config.batch_size, config.seed, config.alpha)

    def request_stop(self) -> None:
        """Finish the current step, checkpoint, and return as cancelled (SIGTERM handler). In a
        data-parallel group, signalling one rank stops them all at the same step."""
        self._stop = True

    def _load_encoder(self, resume_from: Path | None) -> models.Encoder:
        c = self.config
        spec = models.encoder_spec(
            str(resume_from) if resume_from else c.model, c.pooling, c.query_prefix, c.passage_prefix, c.max_length
        )
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
        step = self._resume(resume_from, optimizer, scheduler)
        loss_fn = InfoNCELoss(c.temperature, c.symmetric)
        self.events.on_start(c.steps, step)
        while step < c.steps:
            if self.ctx.any(self._stop, self.device):
                self._checkpoint(encoder, optimizer, scheduler, step)
                return TrainingResult("cancelled", step, [], None)
            report = self._train_step(encoder, optimizer, scheduler, loss_fn, step)
            step = report.step
            self.events.on_step(report)
            faults.point("step", step)
            if c.eval_every and step % c.eval_every == 0 and step < c.steps:
                self._validate(encoder, loss_fn, step)
                self._evaluate(encoder, step, final=False)
            if c.checkpoint_every and step % c.checkpoint_every == 0 and step < c.steps:
                self._checkpoint(encoder, optimizer, scheduler, step)
        return self._finish(encoder, scheduler, loss_fn, step)

    def _resume(self, resume_from: Path | None, optimizer, scheduler) -> int:
        """The step to start from: that of `resume_from`, whose state is restored, or 0. Checkpoints
        past it, and incomplete ones, are removed."""
        step = 0
        if resume_from:
            step = restore_state(resume_from, optimizer, scheduler)
            self.events.on_message(f"resumed from {resume_from} at step {step}")
        if self.ctx.rank == 0:
            for leftover in checkpoints.clean(self.output_dir, step):
                self.events.on_message(f"removed {leftover} (incomplete, or newer than the resume point)")
        return step

    def _train_step(self, encoder: models.Encoder, optimizer, scheduler, loss_fn: InfoNCELoss, step: int) -> StepReport:
        """One optimizer step on this rank's slice of the global batch of `step`."""
        c = self.config
        started = time.perf_counter()
        batch = shard(self.sampler.batch(step), self.ctx.rank, self.ctx.world_size)
        params = [p for p in encoder.parameters() if p.requires_grad]
        loss = self._backward(encoder, batch_texts(batch, {s.name: s for s in self.train_sets}), loss_fn, params)
        self.ctx.average_gradients(params)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm))
        lr = scheduler.get_last_lr()[0]
        if not math.isfinite(loss):
            raise HybtuiError(
                f"training diverged: the loss of step {step + 1} is {loss} (lower --lr, "
                f"raise --temperature, or check the data)"
            )
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - started
        return StepReport(
            step + 1, loss, lr, grad_norm, c.batch_size / seconds, batch.type, batch.dataset, _languages(batch), seconds
        )

    def _backward(
        self, encoder: models.Encoder, texts: BatchTexts, loss_fn: InfoNCELoss, params: list[torch.nn.Parameter]
    ) -> float:
        """Loss and gradients of a batch over `grad_accumulation` micro-batches, each with
        its own negatives (hard negatives only when the batch is one micro-batch)."""
        c = self.config
        micro = chunk_slices(len(texts.queries), math.ceil(len(texts.queries) / c.grad_accumulation))
        loss = 0.0
        for part in micro:
            part_texts = BatchTexts(
                texts.queries[part], texts.passages[part], texts.hard_negatives if len(micro) == 1 else []
            )
            loss += loss_and_backward(
                encoder, part_texts, loss_fn, self.ctx, c.grad_cache_chunk, self.precision.bf16, c.forward_chunk
            ) / len(micro)
        if len(micro) > 1:
            for p in params:
                if p.grad is not None:
                    p.grad /= len(micro)
        return loss

    def _finish(self, encoder: models.Encoder, scheduler, loss_fn: InfoNCELoss, step: int) -> TrainingResult:
        """The final checkpoint, validation and evaluation, then the pruning of the others."""
        c = self.config
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
        path = save_checkpoint(
            checkpoints.path_for(self.output_dir, step), encoder, optimizer, scheduler, step, self.config
        )
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
                    pairs = s.texts_in(lang)
                    for part in chunk_slices(len(pairs), self.config.batch_size):
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
        self.events.on_message(f"step {step}: {'final' if final else 'periodic'} evaluation")
        loaded = [benchmarks.load(s, self.data_dir) for s in self.eval_selections]
        limit = self.config.final_eval_max_queries if final else self.config.eval_max_queries
        if limit:
            loaded = [b.max_queries(limit) for b in loaded]
        encoder.eval()
        tables: list[per_query.QueryTable] = []
        rows = evaluate.evaluate(
            encoder,
            loaded,
            self.train_languages,
            self.config.eval_batch_size,
            self.precision.bf16,
            self._eval_progress(step, final),
            on_queries=tables.append,
        )
        encoder.train()
        self.events.on_query_scores(step, final, per_query.concat(tables))
        self.events.on_eval(step, rows, final)
        return rows

    def _eval_progress(self, step: int, final: bool) -> Callable[[str], Callable[[int, int], None]]:
        """Per encoding call, tells the events at each quarter done: a long final evaluation
        shows how far it is, in a handful of events."""

        def per_call(label: str) -> Callable[[int, int], None]:
            told = [0]

            def progress(done: int, total: int) -> None:
                quarter = 4 * done // max(1, total)
                if quarter > told[0]:
                    told[0] = quarter
                    self.events.on_eval_progress(step, final, label, done, total)

            return progress

        return per_call


def _languages(batch: Batch) -> dict[str, int]:
    if batch.type == "mono":
        return dict(Counter(p.query_lang for p in batch.pairs))
    return dict(Counter(f"{p.query_lang}-{p.passage_lang}" for p in batch.pairs))
