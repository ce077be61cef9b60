"""`hybtui reproduce`: the seed paper's sampler comparison as one grid of ordinary runs.

The grid is a zero-shot baseline (a run of 0 steps: the model evaluated as it is), then
X-X-mono, X-Y and hybrid (one run per α) for each seed — same model, training data,
steps, batch size, learning rate and warmup for every sampler, so the sampler is the
only thing that differs. Every cell is an ordinary run in the store (the app shows,
compares and exports them); the grid record ties them together for the report.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybtui.runs import launcher
from hybtui.reporting import export as report
from hybtui.results import headline, per_language, seen_of
from hybtui.config import RunConfig
from hybtui.data import benchmarks
from hybtui.errors import HybtuiError
from hybtui.inert import md_cell
from hybtui.data.checks import prepare_data, validate_sampler
from hybtui.runs.store import TERMINAL_STATUSES, Store

#: Language resource classes of Joshi et al. (2020), "The State and Fate of Linguistic
#: Diversity"; classes 0–3 are counted as low-resource here.
RESOURCE_CLASS = {
    "ar": 5, "de": 5, "en": 5, "es": 5, "fr": 5, "ja": 5, "zh": 5,
    "fa": 4, "fi": 4, "hi": 4, "ko": 4, "ru": 4, "tr": 4, "vi": 4,
    "bn": 3, "el": 3, "id": 3, "th": 3, "sw": 2, "yo": 2, "te": 1,
}
LOW_RESOURCE_MAX_CLASS = 3

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
QUICK = Budget(steps=30, batch_size=16, train=("mlqa-r:en,de,zh",), eval=("xquad-r:en,zh,th",),
               final_eval_max_queries=200, keep_checkpoints=0)


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
    data_dir: Path | None = None,
) -> GridPlan:
    """Every run of the grid, validated (data, sampler, options) before anything is written."""
    budget = QUICK if quick else FULL
    budget = Budget(steps if steps is not None else budget.steps,
                    batch_size if batch_size is not None else budget.batch_size,
                    tuple(train) if train else budget.train, tuple(eval) if eval else budget.eval,
                    budget.final_eval_max_queries, budget.keep_checkpoints)
    if budget.steps < 1:
        raise HybtuiError(f"--steps must be at least 1 for the trained cells (got {budget.steps})")
    if not alphas:
        raise HybtuiError("give at least one --alpha for the hybrid sampler")
    if len(set(alphas)) != len(alphas) or len(set(seeds)) != len(seeds):
        raise HybtuiError("--alpha and --seed values must not repeat")
    if not seeds:
        raise HybtuiError("give at least one --seed")
    base = RunConfig(
        model=model, train=budget.train, eval=budget.eval, steps=budget.steps, batch_size=budget.batch_size,
        lr=lr, warmup_steps=max(1, budget.steps // 10), seed=seeds[0], device=device,
        final_eval_max_queries=budget.final_eval_max_queries, eval_max_queries=200,
        keep_checkpoints=budget.keep_checkpoints,
        data_dir=str(data_dir.resolve()) if data_dir else None,
    )
    for alpha in alphas:  # every option is checked before the (slow) data and model checks
        base.replace(sampler="hybrid", alpha=alpha)
    from hybtui.modeling import registry

    registry.check_model_and_device(model, device)  # an unusable model or device fails before anything is queued

    train_sets, _ = prepare_data(base, data_dir)
    cells = [Cell(BASELINE, None, seeds[0])]
    for seed in seeds:
        cells += [Cell("mono", None, seed), Cell("cross", None, seed)]
        cells += [Cell("hybrid", alpha, seed) for alpha in alphas]
    name = "reproduce" + ("-quick" if quick else "")
    configs = []
    for cell in cells:
        if cell.sampler == BASELINE:
            config = base.replace(steps=0, warmup_steps=0, name=f"{name} {cell.label}")
        else:
            config = base.replace(sampler=cell.sampler, alpha=cell.alpha if cell.alpha is not None else base.alpha,
                                  seed=cell.seed, name=f"{name} {cell.label} seed {cell.seed}")
            validate_sampler(train_sets, config.sampler, config.batch_size, config.alpha)
        configs.append(config)
    eval_texts = 0
    for selection in benchmarks.parse_eval_spec(list(budget.eval)):
        bench = benchmarks.load(selection, data_dir)
        if budget.final_eval_max_queries:
            bench = bench.max_queries(budget.final_eval_max_queries)
        eval_texts += sum(len(s.queries) + len(s.candidates) for s in bench.splits.values())
    options = {"quick": quick, "model": model, "alphas": list(alphas), "seeds": list(seeds), "lr": lr,
               "steps": budget.steps, "batch_size": budget.batch_size, "train": list(budget.train),
               "eval": list(budget.eval), "final_eval_max_queries": budget.final_eval_max_queries}
    return GridPlan(name, budget, tuple(cells), tuple(configs), eval_texts, options)


def launch(store: Store, grid: GridPlan) -> str:
    """Queue every run (the baseline first: it finishes soonest) and record the grid."""
    cells = []
    for cell, config in zip(grid.cells, grid.configs):
        run_id = store.create_run(config)
        cells.append({"run_id": run_id, "sampler": cell.sampler, "alpha": cell.alpha, "seed": cell.seed,
                      "label": cell.label})
    grid_id = store.create_grid(grid.name, {"options": grid.options, "cells": cells,
                                            "expected_seconds": grid.expected_seconds()})
    launcher.start_queued(store)
    return grid_id


def grid_runs(store: Store, grid: dict) -> list[tuple[dict, dict | None]]:
    """(cell, run) per cell; run is None where it was deleted since."""
    out = []
    for cell in grid["spec"]["cells"]:
        try:
            out.append((cell, store.get_run(cell["run_id"])))
        except HybtuiError:
            out.append((cell, None))
    return out


def is_done(runs: Sequence[tuple[dict, dict | None]]) -> bool:
    return all(run is None or run["status"] in TERMINAL_STATUSES for _, run in runs)


# -- the report -----------------------------------------------------------------------

#: (setting, metric, column heading) of the paper's Table 1 plus language bias
TABLE1 = (("mono", "map", "mono mAP"), ("cross", "map", "cross mAP"), ("multi", "map", "multi mAP"),
          ("multi", "rank_distance", "rank distance"))


def _mean_sd(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def _resource(lang: str) -> str:
    klass = RESOURCE_CLASS.get(lang)
    return "unknown" if klass is None else "low" if klass <= LOW_RESOURCE_MAX_CLASS else "high"


def build_report(store: Store, grid_id: str) -> dict[str, Any]:
    """The grid's figures: Table 1 per sampler (mean ± sd over seeds), per-language
    mono / cross / multi mAP and rank distance with seen / unseen / low-resource marked,
    seen-vs-unseen averages, and hybrid's deltas against every other sampler."""
    grid = store.get_grid(grid_id)
    pairs = grid_runs(store, grid)
    labels = list(dict.fromkeys(cell["label"] for cell, _ in pairs))
    results = {cell["run_id"]: store.results(run["id"]) if run else [] for cell, run in pairs}
    benches = sorted({r["bench"] for rows in results.values() for r in rows})
    status = {label: [run["status"] if run else "deleted" for cell, run in pairs if cell["label"] == label]
              for label in labels}
    out: dict[str, Any] = {"grid": grid["id"], "name": grid["name"], "options": grid["spec"]["options"],
                           "runs": [{**cell, "status": run["status"] if run else "deleted",
                                     "wall_s": _wall(run)} for cell, run in pairs],
                           "status": status, "benchmarks": {}}
    for bench in benches:
        by_label = {label: [results[cell["run_id"]] for cell, _ in pairs if cell["label"] == label
                            and results[cell["run_id"]]] for label in labels}
        heads = {label: [headline(rows) for rows in runs] for label, runs in by_label.items()}
        table1 = {label: {heading: _mean_sd([h[bench, setting, metric] for h in hs if (bench, setting, metric) in h])
                          for setting, metric, heading in TABLE1}
                  for label, hs in heads.items()}
        seen = {}
        for rows in results.values():
            seen.update(seen_of(rows, bench))
        languages = {}
        for lang in sorted(seen):
            languages[lang] = {"seen": seen[lang], "resource": _resource(lang), "samplers": {
                label: {heading: _mean_sd([v for rows in runs
                                           if (v := per_language(rows, bench, setting, metric).get(lang))
                                           is not None])["mean"]
                        for setting, metric, heading in TABLE1}
                for label, runs in by_label.items()}}
        groups = {label: {group: {setting: _mean_sd([r["value"] for rows in runs for r in rows
                                                     if r["bench"] == bench and r["query_lang"] == "avg"
                                                     and r["seen"] == group and r["setting"] == setting
                                                     and r["metric"] == "map"])["mean"]
                                  for setting in ("mono", "cross", "multi")}
                          for group in ("seen", "unseen", "mixed")}
                  for label, runs in by_label.items()}
        deltas = {}
        for hybrid in (label for label in labels if label.startswith("hybrid")):
            for other in (label for label in labels if not label.startswith("hybrid")):
                deltas[f"{hybrid} − {other}"] = {
                    heading: (table1[hybrid][heading]["mean"] - table1[other][heading]["mean"]
                              if table1[hybrid][heading]["mean"] is not None
                              and table1[other][heading]["mean"] is not None else None)
                    for _, _, heading in TABLE1}
        out["benchmarks"][bench] = {"table1": table1, "languages": languages, "seen_groups": groups,
                                    "deltas": deltas}
    return out


def _wall(run: dict | None) -> float | None:
    if not run or not run["started_at"] or not run["ended_at"]:
        return None
    return run["ended_at"] - run["started_at"]


def language_label(lang: str, info: dict[str, Any]) -> str:
    """The language marked as in the report: † unseen in training, ‡ low-resource."""
    return lang + ("†" if info["seen"] == "unseen" else "") + ("‡" if info["resource"] == "low" else "")


def figure(value: float | None, heading: str, sd: float | None = None, signed: bool = False) -> str:
    """A report number: rank distance to one decimal, mAP to three, ± sd over seeds."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    spec = (".1f" if "rank" in heading else ".3f")
    text = format(value, ("+" if signed else "") + spec)
    return text + (f" ± {format(sd, spec)}" if sd is not None else "")


def to_markdown(rep: dict[str, Any]) -> str:
    """The report as Markdown: Table 1, hybrid's deltas, seen/unseen, per language. Stored
    text (names, labels, options) goes through ``md_cell``: it cannot end a cell or a line."""
    opts = rep["options"]
    lines = [f"# {md_cell(rep['name'])} — grid {md_cell(rep['grid'])}", "",
             f"Model `{md_cell(opts['model'])}`, trained on `{md_cell(' '.join(opts['train']))}` "
             f"for {opts['steps']} steps "
             f"at batch {opts['batch_size']}, lr {opts['lr']:g}, seeds {', '.join(map(str, opts['seeds']))}; "
             f"evaluated on `{md_cell(' '.join(opts['eval']))}`"
             + (f" ({opts['final_eval_max_queries']} queries per language)." if opts["final_eval_max_queries"]
                else " (all queries)."), ""]
    walls = [r["wall_s"] for r in rep["runs"] if r["wall_s"]]
    unfinished = [md_cell(f"{r['label']} seed {r['seed']}: {r['status']}") for r in rep["runs"]
                  if r["status"] != "finished"]
    if walls:
        lines += [f"Run time: {sum(walls) / 60:.1f} min over {len(walls)} runs.", ""]
    if unfinished:
        lines += ["Not finished: " + "; ".join(unfinished) + ".", ""]
    headings = [h for _, _, h in TABLE1]
    for bench, b in rep["benchmarks"].items():
        lines += [f"## {md_cell(bench)}", "", "| sampler | " + " | ".join(headings) + " |",
                  "|---|" + "---:|" * len(headings)]
        for label, row in b["table1"].items():
            lines.append(f"| {md_cell(label)} | "
                         + " | ".join(figure(row[h]["mean"], h, row[h]["sd"]) for h in headings) + " |")
        if b["deltas"]:
            lines += ["", "Hybrid against each other sampler (rank distance: lower is better):", "",
                      "| delta | " + " | ".join(headings) + " |", "|---|" + "---:|" * len(headings)]
            for name, row in b["deltas"].items():
                lines.append(f"| {md_cell(name)} | "
                             + " | ".join(figure(row[h], h, signed=True) for h in headings) + " |")
        groups = [g for g in ("seen", "unseen", "mixed")
                  if any(v is not None for row in b["seen_groups"].values() for v in row[g].values())]
        if groups:
            cols = [f"{g} {s}" for g in groups for s in ("mono", "cross", "multi")]
            lines += ["", "mAP by whether the languages were seen in training (cross: mixed = one of the two):", "",
                      "| sampler | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
            for label, row in b["seen_groups"].items():
                lines.append(f"| {md_cell(label)} | " + " | ".join(figure(row[g][s], "map") for g in groups
                                                           for s in ("mono", "cross", "multi")) + " |")
        labels = list(b["table1"])
        lines += ["", "Per query language (multi mAP / rank distance; † unseen in training, ‡ low-resource):", "",
                  "| language | " + " | ".join(map(md_cell, labels)) + " |", "|---|" + "---:|" * len(labels)]
        for lang, info in b["languages"].items():
            cells = [f"{figure(s['multi mAP'], 'map')} / {figure(s['rank distance'], 'rank')}"
                     for s in info["samplers"].values()]
            lines.append(f"| {md_cell(language_label(lang, info))} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(store: Store, grid_id: str) -> tuple[dict[str, Any], Path]:
    """Build the report and write ``report.md`` and ``report.json`` into ``grids/<id>/``."""
    rep = build_report(store, grid_id)
    directory = store.path / "grids" / rep["grid"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    (directory / "report.md").write_text(to_markdown(rep))
    return rep, directory
