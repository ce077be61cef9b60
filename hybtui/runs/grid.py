"""`hybtui reproduce`: the seed paper's sampler comparison as one grid of ordinary runs.

The grid is a zero-shot baseline (a run of 0 steps: the model evaluated as it is), then
X-X-mono, X-Y and hybrid (one run per α) for each seed — same model, training data,
steps, batch size, learning rate and warmup for every sampler, so the sampler is the
only thing that differs. Every cell is an ordinary run in the store (the app shows,
compares and exports them); the grid record ties them together for the report.

This module plans, launches and reads a grid; its report (reporting/grid_report.py)
sits a layer above and only reads what is written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybtui.config import RunConfig
from hybtui.data import benchmarks
from hybtui.data.checks import prepare_data, validate_sampler
from hybtui.data.training import TrainingData
from hybtui.errors import HybtuiError, RunNotFound
from hybtui.runs import gpus as gpu_pool
from hybtui.runs import launcher
from hybtui.runs.records import TERMINAL_STATUSES, Placement, Run
from hybtui.runs.store import Store

#: Throughput of me5-small measured on a 2-core CPU (benchmarks/results): training pairs
#: per second at batch 32, and texts encoded per second for evaluation. They turn a grid
#: into an expected wall time before anything starts.
CPU_PAIRS_PER_S = 7.35
CPU_TEXTS_PER_S = 53.9
#: Model load, validation loss and start-up per run, seconds.
RUN_OVERHEAD_S = 20.0

BASELINE = "baseline"


@dataclass(frozen=True)
class Budget:
    """How much a grid trains and evaluates."""

    steps: int
    batch_size: int
    train: tuple[str, ...]
    eval: tuple[str, ...]
    #: queries per language in each run's final evaluation; 0 = all
    final_eval_max_queries: int
    #: final encoders each run keeps (RunConfig.keep_checkpoints)
    keep_checkpoints: int = 1


#: The full grid: all of MLQA-R for training, all of XQuAD-R (11 languages, 4 unseen).
FULL = Budget(steps=150, batch_size=32, train=("mlqa-r",), eval=("xquad-r",), final_eval_max_queries=0)
#: Under 15 minutes on 2 CPU cores: three training languages, three evaluation languages
#: (th unseen in training and low-resource), 200 queries per language. A smoke test: its
#: runs keep their results, not their models, so its store stays small.
QUICK = Budget(
    steps=30,
    batch_size=16,
    train=("mlqa-r:en,de,zh",),
    eval=("xquad-r:en,zh,th",),
    final_eval_max_queries=200,
    keep_checkpoints=0,
)


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a sampler (or the zero-shot baseline), its α, a seed."""

    sampler: str
    alpha: float | None
    seed: int

    @property
    def label(self) -> str:
        """The paper's names: X-X-mono, X-Y, hybrid."""
        if self.sampler == "hybrid":
            return f"hybrid α={self.alpha:g}"
        return {BASELINE: "zero-shot", "mono": "X-X-mono", "cross": "X-Y"}[self.sampler]


@dataclass(frozen=True)
class GridPlan:
    """Every run of a grid, planned and checked, with the options recorded beside it."""

    name: str
    budget: Budget
    cells: tuple[Cell, ...]
    configs: tuple[RunConfig, ...]
    #: texts each full evaluation encodes (queries + candidates), for the time estimate
    eval_texts: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def expected_seconds(self) -> float:
        """Wall time at the measured me5-small CPU rates, one run at a time."""
        pairs = sum(c.steps * c.batch_size for c in self.configs)
        return pairs / CPU_PAIRS_PER_S + len(self.configs) * (self.eval_texts / CPU_TEXTS_PER_S + RUN_OVERHEAD_S)


def plan(
    *,
    quick: bool,
    model: str,
    alphas: Sequence[float],
    seeds: Sequence[int],
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float = 3e-5,
    train: Sequence[str] | None = None,
    eval: Sequence[str] | None = None,
    device: str = "auto",
    precision: str = "auto",
    data_dir: Path | None = None,
) -> GridPlan:
    """Every run of the grid, validated (data, sampler, options) before anything is written."""
    budget = _budget(QUICK if quick else FULL, steps, batch_size, train, eval)
    _check_options(budget, alphas, seeds)
    base = RunConfig(
        model=model,
        train=budget.train,
        eval=budget.eval,
        steps=budget.steps,
        batch_size=budget.batch_size,
        lr=lr,
        warmup_steps=max(1, budget.steps // 10),
        seed=seeds[0],
        device=device,
        precision=precision,
        final_eval_max_queries=budget.final_eval_max_queries,
        eval_max_queries=200,
        keep_checkpoints=budget.keep_checkpoints,
        data_dir=str(data_dir.resolve()) if data_dir else None,
    )
    for alpha in alphas:  # every option is checked before the (slow) data and model checks
        base.replace(sampler="hybrid", alpha=alpha)
    from hybtui.modeling import registry

    registry.check_model_and_device(model, device, precision=precision)  # refused before anything is queued

    train_sets, _ = prepare_data(base, data_dir)
    cells = [Cell(BASELINE, None, seeds[0])]
    for seed in seeds:
        cells += [Cell("mono", None, seed), Cell("cross", None, seed)]
        cells += [Cell("hybrid", alpha, seed) for alpha in alphas]
    name = "reproduce" + ("-quick" if quick else "")
    configs = [_cell_config(base, cell, name, train_sets) for cell in cells]
    options = {
        "quick": quick,
        "model": model,
        "alphas": list(alphas),
        "seeds": list(seeds),
        "lr": lr,
        "steps": budget.steps,
        "batch_size": budget.batch_size,
        "train": list(budget.train),
        "eval": list(budget.eval),
        "final_eval_max_queries": budget.final_eval_max_queries,
    }
    return GridPlan(name, budget, tuple(cells), tuple(configs), _eval_texts(budget, data_dir), options)


def _budget(
    default: Budget, steps: int | None, batch_size: int | None, train: Sequence[str] | None, eval: Sequence[str] | None
) -> Budget:
    """The default budget with the options given in its place."""
    return Budget(
        steps if steps is not None else default.steps,
        batch_size if batch_size is not None else default.batch_size,
        tuple(train) if train else default.train,
        tuple(eval) if eval else default.eval,
        default.final_eval_max_queries,
        default.keep_checkpoints,
    )


def _check_options(budget: Budget, alphas: Sequence[float], seeds: Sequence[int]) -> None:
    """The grid's own options, checked first: they are the cheapest to get wrong and to check."""
    if budget.steps < 1:
        raise HybtuiError(f"--steps must be at least 1 for the trained cells (got {budget.steps})")
    if not alphas:
        raise HybtuiError("give at least one --alpha for the hybrid sampler")
    if len(set(alphas)) != len(alphas) or len(set(seeds)) != len(seeds):
        raise HybtuiError("--alpha and --seed values must not repeat")
    if not seeds:
        raise HybtuiError("give at least one --seed")


def _cell_config(base: RunConfig, cell: Cell, name: str, train_sets: list[TrainingData]) -> RunConfig:
    """A cell's run: the baseline trains 0 steps; a trained cell's sampler is checked
    against the training data (it may not be able to fill a batch)."""
    if cell.sampler == BASELINE:
        return base.replace(steps=0, warmup_steps=0, name=f"{name} {cell.label}")
    config = base.replace(
        sampler=cell.sampler,
        alpha=cell.alpha if cell.alpha is not None else base.alpha,
        seed=cell.seed,
        name=f"{name} {cell.label} seed {cell.seed}",
    )
    validate_sampler(train_sets, config.sampler, config.batch_size, config.alpha)
    return config


def _eval_texts(budget: Budget, data_dir: Path | None) -> int:
    """Texts one final evaluation encodes (queries and candidates), for the time estimate."""
    texts = 0
    for selection in benchmarks.parse_eval_spec(list(budget.eval)):
        bench = benchmarks.load(selection, data_dir)
        if budget.final_eval_max_queries:
            bench = bench.max_queries(budget.final_eval_max_queries)
        texts += sum(len(s.queries) + len(s.candidates) for s in bench.splits.values())
    return texts


def launch(store: Store, grid: GridPlan, remote: Placement | None = None) -> str:
    """Queue every run (the baseline first: it finishes soonest) and record the grid; on a
    remote backend, each run is one job submitted at once."""
    cells = []
    for cell, config in zip(grid.cells, grid.configs):
        local = Placement(gpu_pool.default_count(config.device))
        run_id = launcher.enqueue(store, config, placement=remote or local)
        cells.append(
            {"run_id": run_id, "sampler": cell.sampler, "alpha": cell.alpha, "seed": cell.seed, "label": cell.label}
        )
    grid_id = store.create_grid(
        grid.name, {"options": grid.options, "cells": cells, "expected_seconds": grid.expected_seconds()}
    )
    launcher.start_queued(store)
    return grid_id


def grid_runs(store: Store, grid: dict) -> list[tuple[dict, Run | None]]:
    """(cell, run) per cell; run is None where it was deleted since."""
    out = []
    for cell in grid["spec"]["cells"]:
        try:
            out.append((cell, store.get_run(cell["run_id"])))
        except RunNotFound:
            out.append((cell, None))
    return out


def is_done(runs: Sequence[tuple[dict, Run | None]]) -> bool:
    """Whether every cell's run has ended (or was deleted): the grid's report is final."""
    return all(run is None or run.status in TERMINAL_STATUSES for _, run in runs)
