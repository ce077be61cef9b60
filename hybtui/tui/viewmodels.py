"""Immutable snapshots of what the screens show, read from the store off the UI thread.

Everything here is plain data and pure formatting, so the screens only apply
snapshots and the reading and formatting can be tested without a terminal.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from rich.text import Text

from hybtui import inert
from hybtui.data.benchmarks import EVAL_LANGUAGES
from hybtui.data.miracl import BEIR
from hybtui.formatting import age, number
from hybtui.runs.records import RunState, RunSummary, is_stalled
from hybtui.runs.store import Store

#: The benchmark whose final macro-averages are the run list's headline figures.
HEADLINE_BENCH = "xquad-r"
#: The metric key plotted as the loss curve.
LOSS_KEY = "loss"
STATUS_STYLES = {
    "queued": "dim",
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "crashed": "bold red",
}


@dataclass(frozen=True)
class RunRow:
    """One line of the run table: its key (the run id), the ``Store.run_overview`` row it
    shows, and the text the filter's free words match (name, model, sampler, status, devices).
    Cells are formatted on first use: a huge store's table shows only its first rows."""

    key: str
    run: RunSummary
    now: float

    @cached_property
    def search(self) -> str:
        run = self.run
        return " ".join([run.name or "", str(run.model or ""), sampler_label(run), run.status, run.devices]).lower()

    @cached_property
    def fields(self) -> dict[str, str]:
        """What the filter's ``field:value`` terms match, lower case: a run's languages are those it
        trains and those it is evaluated on (a benchmark named without a list: all of its own)."""
        run = self.run
        languages = {lang for spec in (*run.train, *run.eval) for lang in spec_languages(spec)}
        return {
            "status": str(run.status),
            "sampler": f"{sampler_label(run)} {run.sampler or ''}".lower(),
            "model": str(run.model or "").lower(),
            "lang": " ".join(sorted(languages)).lower(),
        }

    @cached_property
    def figures(self) -> dict[tuple[str, str], float]:
        """(setting, metric) → final macro-average of the run's headline bench."""
        return self.run.figures.get(headline_bench(set(self.run.figures)), {})

    @cached_property
    def cells(self) -> tuple[str | Text, ...]:
        """Stored text (id, name, model, sampler, languages) as inert Text: a DataTable parses
        strings as markup."""
        run, figures = self.run, self.figures
        return (
            inert.text(run.id),
            inert.text(run.name or ""),
            inert.text(run.model or "", style="red" if run.config_error else ""),
            inert.text(sampler_label(run)),
            number(run.alpha, 2, missing="") if run.total_steps and run.sampler == "hybrid" else "",
            inert.text(train_languages(run.train)),
            status_text(run, self.now),
            inert.text(run.devices),
            *(number(figures.get((setting, "map")), missing="") for setting in ("mono", "cross", "multi")),
            number(figures.get(("multi", "rank_distance")), 2, missing=""),
            age(self.now - run.created_at),
        )

    def sort_value(self, column: str) -> float | str | None:
        """What the run list sorts by in ``column`` (None: no value, sorted last)."""
        if column in ("mono", "cross", "multi"):
            value = self.figures.get((column, "map"))
        elif column == "rank_distance":
            value = self.figures.get(("multi", "rank_distance"))
        else:
            return (self.run.name or "").lower() if column == "name" else str(self.run[column]).lower()
        return None if value is None or math.isnan(value) else value


def elapsed(run: RunState, now: float) -> float:
    """Seconds the current attempt has run (until it ended), 0 before it started."""
    if run.started_at is None:
        return 0.0
    return (run.ended_at or now) - run.started_at


def status_text(run: RunState, now: float | None = None) -> Text:
    """The status, coloured, with the progress of a started, unfinished run (``running 40/100``,
    ``crashed 70/100``) and a stall mark."""
    label = run.status
    if run.status != "finished" and run.started_at is not None and run.total_steps:
        label += f" {run.step or 0}/{run.total_steps}"
    if is_stalled(run, now):
        label += " stalled"
    return inert.text(label, style=STATUS_STYLES.get(run.status, ""))


def spec_languages(spec: str) -> tuple[str, ...]:
    """The languages of a benchmark spec (``mlqa-r:en,de``, ``beir:PATH:en``; ``xquad-r``: all of
    xquad-r's; ``beir:PATH``: none known)."""
    bench, _, listed = spec.partition(":")
    if bench == BEIR:
        _, colon, listed = listed.rpartition(":")
        listed = listed if colon else ""
    if listed:
        return tuple(lang.strip() for lang in listed.split(","))
    return EVAL_LANGUAGES.get(bench) or ()


def status_room(run: RunState, now: float | None = None) -> int:
    """The widest ``status_text`` of this run until its status changes: a running run's progress
    counted up to the last step (``running 100/100``), so a column this wide never cuts a live status."""
    shown = len(status_text(run, now))
    if run.status != "running" or run.started_at is None or not run.total_steps:
        return shown
    return shown + len(str(run.total_steps)) - len(str(run.step or 0))


def train_languages(specs: list[str]) -> str:
    """The training languages of a run's specs (``mlqa-r:en,de`` → ``en,de``; no list: all)."""
    parts = [spec.split(":", 1)[1] if ":" in spec else "all" for spec in specs]
    return " ".join(parts)


def headline_bench(benches: set[str]) -> str:
    """HEADLINE_BENCH when the run has it, else its first benchmark by name."""
    return HEADLINE_BENCH if HEADLINE_BENCH in benches or not benches else min(benches)


def sampler_label(run: RunSummary) -> str:
    """The sampler (``hybrid .5`` with its α), or ``zero-shot`` for a run of 0 steps (the
    model evaluated as it is)."""
    if run.total_steps == 0:
        return "zero-shot"
    if run.sampler == "hybrid" and run.alpha is not None:
        return f"hybrid {run.alpha:g}".replace(" 0.", " .")
    return str(run.sampler or "")


def run_row(run: RunSummary, now: float) -> RunRow:
    """A run's table line (a ``Store.run_overview`` row); headline figures are the final
    macro-averages of its headline bench."""
    return RunRow(run.id, run, now)


def read_runs(store: Store) -> tuple[RunRow, ...]:
    """Every run, newest first, as table lines: one query whatever the number of runs."""
    now = time.time()
    return tuple(run_row(run, now) for run in store.run_overview())


def downsample(steps: np.ndarray, values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``width`` points, each the mean of an equal run of consecutive points:
    a plot cannot show more, and averaging keeps the curve's shape without its noise.
    Vectorised, so 100,000 points cost well under a millisecond."""
    if not len(steps):
        return steps, values
    bucket = math.ceil(len(steps) / max(1, width))
    starts = np.arange(0, len(steps), bucket)
    counts = np.diff(np.append(starts, len(steps)))
    return np.add.reduceat(steps, starts) / counts, np.add.reduceat(values, starts) / counts
