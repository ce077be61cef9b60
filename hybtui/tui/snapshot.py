"""Immutable snapshots of what the screens show, read from the store off the UI thread.

Everything here is plain data and pure formatting, so the screens only apply
snapshots and the reading and formatting can be tested without a terminal.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text

from hybtui import launcher
from hybtui.report import headline, per_language, seen_of
from hybtui.store import Store, is_stalled

#: The benchmark whose final macro-averages are the run list's headline figures.
HEADLINE_BENCH = "xquad-r"
#: The metric key plotted as the loss curve.
LOSS_KEY = "loss"
#: How much of an existing worker log the detail screen shows when it opens.
LOG_TAIL_BYTES = 16_384
STATUS_STYLES = {"queued": "dim", "running": "bold cyan", "finished": "green", "failed": "bold red",
                 "cancelled": "yellow", "crashed": "bold red"}


@dataclass(frozen=True)
class RunRow:
    """One line of the run table: its key (the run id), its cells, and the text the
    filter matches (name, model, sampler, status)."""

    key: str
    cells: tuple[str | Text, ...]
    search: str


@dataclass(frozen=True)
class DetailSnapshot:
    """What changed for one run since the last read: the run itself, new loss points (up to
    metric id ``last_id``), the final results, and the log text from ``log_offset`` to ``log_end``."""

    run: dict[str, Any]
    last_id: int
    points: tuple[tuple[int, float], ...]
    results: tuple[dict[str, Any], ...]
    log_offset: int
    log_end: int
    log_text: str


def human_duration(seconds: float) -> str:
    """Two significant units at most: ``45s``, ``3m05s``, ``2h10m``, ``4d03h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def elapsed(run: dict[str, Any], now: float) -> float:
    """Seconds the current attempt has run (until it ended), 0 before it started."""
    if run["started_at"] is None:
        return 0.0
    return (run["ended_at"] or now) - run["started_at"]


def status_text(run: dict[str, Any], now: float | None = None) -> Text:
    """The status, coloured, with the progress of a started, unfinished run (``running 40/100``,
    ``crashed 70/100``) and a stall mark."""
    label = run["status"]
    if run["status"] != "finished" and run["started_at"] is not None and run["total_steps"]:
        label += f" {run['step'] or 0}/{run['total_steps']}"
    if is_stalled(run, now):
        label += " stalled"
    return Text(label, style=STATUS_STYLES.get(run["status"], ""))


def train_languages(config: dict[str, Any]) -> str:
    """The training languages of a run's specs (``mlqa-r:en,de`` → ``en,de``; no list: all)."""
    parts = [spec.split(":", 1)[1] if ":" in spec else "all" for spec in config.get("train", ())]
    return " ".join(parts)


def _figure(value: float | None, digits: int = 3) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def run_row(run: dict[str, Any], results: list[dict[str, Any]], now: float) -> RunRow:
    """A run's table line; headline figures come from its final HEADLINE_BENCH results."""
    config = run["config"]
    figures = headline(results)
    cells = (
        run["id"], run["name"] or "", str(config.get("model", "")), str(config.get("sampler", "")),
        _figure(config.get("alpha"), 2), train_languages(config), status_text(run, now),
        *(_figure(figures.get((HEADLINE_BENCH, setting, "map"))) for setting in ("mono", "cross", "multi")),
        _figure(figures.get((HEADLINE_BENCH, "multi", "rank_distance")), 2),
        human_duration(now - run["created_at"]),
    )
    search = " ".join([run["name"] or "", str(config.get("model", "")), str(config.get("sampler", "")),
                       run["status"]]).lower()
    return RunRow(run["id"], cells, search)


def read_runs(store: Store) -> tuple[RunRow, ...]:
    """Every run, newest first, as table lines."""
    now = time.time()
    return tuple(run_row(run, store.results(run["id"]), now) for run in store.list_runs())


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


def read_detail(store: Store, run_id: str, after_id: int, log_offset: int) -> DetailSnapshot:
    """One incremental read for the detail screen (``log_offset`` -1: not read yet)."""
    run = store.get_run(run_id)
    rows = store.metrics_since(run["id"], after_id, keys=[LOSS_KEY])
    points = tuple((row["step"], row["value"]) for row in rows if not math.isnan(row["value"]))
    start, end, text = read_log(launcher.log_path(store, run["id"]), log_offset)
    return DetailSnapshot(run=run, last_id=rows[-1]["id"] if rows else after_id,
                          points=points, results=tuple(store.results(run["id"])),
                          log_offset=start, log_end=end, log_text=text)


def language_rows(results: list[dict[str, Any]], bench: str) -> list[tuple[str, str, str, str, str]]:
    """Per query language: (lang, seen, mono mAP, cross mAP, multi mAP), then the averages."""
    by_setting = {setting: per_language(results, bench, setting) for setting in ("mono", "cross", "multi")}
    seen = seen_of(results, bench)
    langs = sorted({lang for values in by_setting.values() for lang in values})
    rows = [(lang, seen.get(lang) or "", *(_figure(by_setting[s].get(lang)) for s in ("mono", "cross", "multi")))
            for lang in langs]
    figures = headline(results)
    if rows:
        rows.append(("avg", "", *(_figure(figures.get((bench, s, "map"))) for s in ("mono", "cross", "multi"))))
    return rows


def downsample(points: list[tuple[int, float]], width: int) -> tuple[list[float], list[float]]:
    """At most ``width`` points, each the mean of an equal run of consecutive points:
    a plot cannot show more, and averaging keeps the curve's shape without its noise."""
    if not points:
        return [], []
    width = max(1, width)
    bucket = math.ceil(len(points) / width)
    xs, ys = [], []
    for start in range(0, len(points), bucket):
        chunk = points[start:start + bucket]
        xs.append(sum(step for step, _ in chunk) / len(chunk))
        ys.append(sum(value for _, value in chunk) / len(chunk))
    return xs, ys
