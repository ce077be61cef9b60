"""Immutable snapshots of what the screens show, read from the store off the UI thread.

Everything here is plain data and pure formatting, so the screens only apply
snapshots and the reading and formatting can be tested without a terminal.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text

from hybtui import inert
from hybtui.data.benchmarks import EVAL_LANGUAGES
from hybtui.data.miracl import BEIR
from hybtui.formatting import age, number
from hybtui.results import AVERAGE, headline, per_language, seen_of
from hybtui.runs import launcher
from hybtui.runs.disk import run_disk_usage
from hybtui.runs.records import Run, RunState, RunSummary, is_stalled
from hybtui.runs.store import Store

#: The benchmark whose final macro-averages are the run list's headline figures.
HEADLINE_BENCH = "xquad-r"
#: The metric key plotted as the loss curve, and the one plotted beside it (right axis).
LOSS_KEY = "loss"
LR_KEY = "lr"
PLOTTED_KEYS = (LOSS_KEY, LR_KEY)
#: How much of an existing worker log the detail screen shows when it opens.
LOG_TAIL_BYTES = 16_384
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
    search: str

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


@dataclass(frozen=True)
class DetailSnapshot:
    """What changed for one run since the last read: the run itself, new loss and learning-rate
    points (up to metric id ``last_id``), the final results, and the log text from
    ``log_offset`` to ``log_end``."""

    run: Run
    last_id: int
    #: new (step, value, time) points per plotted key
    series: dict[str, tuple[tuple[int, float, float], ...]]
    #: the final results, when they were read
    results: tuple[dict[str, Any], ...] | None
    log_offset: int
    log_end: int
    log_text: str
    #: the run directory and what it occupies (``disk 487.1 MB (1 checkpoint, 487.1 MB)``)
    run_dir: Path
    disk: str
    #: new GPU samples (``Store.telemetry`` rows, up to id ``telemetry_last_id``); none for a CPU run
    telemetry: tuple[dict[str, Any], ...] = ()
    telemetry_last_id: int = 0
    #: why a queued run waits (``waiting for 2 GPUs (1 free)``); None for any other
    waiting: str | None = None


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
    search = " ".join([run.name or "", str(run.model or ""), sampler_label(run), run.status, run.devices]).lower()
    return RunRow(run.id, run, now, search)


def read_runs(store: Store) -> tuple[RunRow, ...]:
    """Every run, newest first, as table lines: one query whatever the number of runs."""
    now = time.time()
    return tuple(run_row(run, now) for run in store.run_overview())


def read_log(path: Path, offset: int) -> tuple[int, int, str]:
    """Log text written since ``offset`` as ``(offset, end, text)``. The first read starts
    LOG_TAIL_BYTES before the end; a file that shrank (rewritten) is read again from its tail."""
    try:
        size = path.stat().st_size
    except OSError:
        return offset, offset, ""
    start = offset if 0 <= offset <= size else -1
    if start < 0:
        start = max(0, size - LOG_TAIL_BYTES)
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
    return start, start + len(data), data.decode("utf-8", errors="replace")


def read_detail(
    store: Store, run_id: str, after_id: int, log_offset: int, with_results: bool, after_telemetry: int = 0
) -> DetailSnapshot:
    """One incremental read for the detail screen (``log_offset`` -1: not read yet; metrics and
    GPU samples after the ids given). Final results are read only when asked (the screen asks
    until it has them and the run ended)."""
    run = store.get_run(run_id)
    telemetry = tuple(store.telemetry(run.id, after_telemetry))
    rows = store.metrics_since(run.id, after_id, keys=PLOTTED_KEYS)
    series = {
        key: tuple(
            (row["step"], row["value"], row["time"])
            for row in rows
            if row["key"] == key and not math.isnan(row["value"])
        )
        for key in PLOTTED_KEYS
    }
    start, end, text = read_log(launcher.log_path(store, run.id), log_offset)
    run_dir = store.run_dir(run.id)
    return DetailSnapshot(
        run=run,
        last_id=rows[-1]["id"] if rows else after_id,
        series=series,
        results=tuple(store.results(run.id)) if with_results else None,
        log_offset=start,
        log_end=end,
        log_text=text,
        run_dir=run_dir,
        disk=run_disk_usage(run_dir).describe(),
        telemetry=telemetry,
        telemetry_last_id=telemetry[-1]["id"] if telemetry else after_telemetry,
        waiting=launcher.schedule(store)[1].get(run.id) if run.status == "queued" else None,
    )


def eta(run: RunState, samples: list[tuple[int, float]]) -> float | None:
    """Seconds left to the last step at this attempt's pace, from (step, time) samples of
    steps reported since the run (re)started; None before two of them."""
    if run.status != "running" or not run.total_steps:
        return None
    attempt = [(step, t) for step, t in samples if run.started_at is None or t >= run.started_at]
    if len(attempt) < 2 or attempt[-1][0] == attempt[0][0] or attempt[-1][1] == attempt[0][1]:
        return None
    (first_step, first_t), (last_step, last_t) = attempt[0], attempt[-1]
    per_step = (last_t - first_t) / (last_step - first_step)
    return max(0.0, (run.total_steps - (run.step or last_step)) * per_step)


@dataclass(frozen=True)
class LanguageFigures:
    """One query language of the detail screen: final mAP per setting and language bias."""

    lang: str
    #: "seen" / "unseen" in training, "" when unknown
    seen: str
    mono: float | None
    cross: float | None
    multi: float | None
    rank_distance: float | None


def language_rows(results: list[dict[str, Any]], bench: str) -> list[LanguageFigures]:
    """Per query language (cross: the mean over its pairs), then the macro-averages as ``avg``."""
    settings = (("mono", "map"), ("cross", "map"), ("multi", "map"), ("multi", "rank_distance"))
    per = [per_language(results, bench, setting, metric) for setting, metric in settings]
    seen = seen_of(results, bench)
    langs = sorted({lang for values in per for lang in values})
    rows = [LanguageFigures(lang, seen.get(lang) or "", *(values.get(lang) for values in per)) for lang in langs]
    figures = headline(results)
    if rows:
        rows.append(LanguageFigures(AVERAGE, "", *(figures.get((bench, s, m)) for s, m in settings)))
    return rows


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
