"""What a run's page shows, read from the store off the UI thread: new points of its curves,
its results over steps, its events merged with its worker log, its files, and the truths of
its header (the device used, the step reached, the time left with evaluations counted).

Plain data and pure functions, so reading and formatting are tested without a terminal.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybtui.formatting import human_bytes
from hybtui.modeling import precision as precisions
from hybtui.results import AVERAGE, HEADLINE, headline, per_language, seen_of
from hybtui.runs import launcher
from hybtui.runs.disk import run_disk_usage, tree_bytes
from hybtui.runs.records import TERMINAL_STATUSES, Run, RunState
from hybtui.runs.store import Store
from hybtui.tui.viewmodels import LOSS_KEY, headline_bench

LR_KEY = "lr"
#: What the worker records as the validation loss (StoreEvents.on_validation).
VALIDATION_KEY = "validation_loss"
PLOTTED_KEYS = (LOSS_KEY, LR_KEY, VALIDATION_KEY)
#: How much of an existing worker log the page shows when it opens.
LOG_TAIL_BYTES = 16_384
#: The event the worker records once the trainer has resolved its device ("device cuda:0").
DEVICE_EVENT = re.compile(r"^device (\S+)$")
#: The trainer's evaluation events: "step 10: periodic evaluation", then "… evaluation done".
EVAL_EVENT = re.compile(r"^step (\d+): (periodic|final) evaluation( done)?$")
#: How far the evaluation under way has encoded: "step 10: final evaluation: xquad-r candidates 50%".
EVAL_PROGRESS_EVENT = re.compile(r"^step \d+: (?:periodic|final) evaluation: (.+)$")
#: The curves of the evaluation plot: (label, setting, metric); rank distance on the right axis.
EVAL_CURVES = tuple(
    (f"{setting} {'mAP' if metric == 'map' else 'rank dist.'}", setting, metric) for setting, metric in HEADLINE
)


@dataclass(frozen=True)
class DetailSnapshot:
    """What changed for one run since the last read: the run, new curve points (up to metric
    id ``last_id``), its result rows (every evaluation, when read), new events (up to
    ``events_last_id``), the log text from ``log_offset`` to ``log_end``, and its files."""

    run: Run
    last_id: int
    #: new (step, value, time) points per plotted key
    series: dict[str, tuple[tuple[int, float, float], ...]]
    #: every result row (periodic and final), when they were read
    results: tuple[dict[str, Any], ...] | None
    log_offset: int
    log_end: int
    log_text: str
    #: the run directory and what it occupies (``disk 487.1 MB (1 checkpoint, 487.1 MB)``)
    run_dir: Path
    disk: str
    #: new ``Store.events`` rows
    events: tuple[dict[str, Any], ...] = ()
    events_last_id: int = 0
    #: (step, path, bytes) of each recorded checkpoint
    checkpoints: tuple[tuple[int | None, Path, int], ...] = ()
    log_path: Path = Path()
    #: new GPU samples (``Store.telemetry`` rows, up to id ``telemetry_last_id``); none for a CPU run
    telemetry: tuple[dict[str, Any], ...] = ()
    telemetry_last_id: int = 0
    #: why a queued run waits (``waiting for 2 GPUs (1 free)``); None for any other
    waiting: str | None = None

    @property
    def final_results(self) -> tuple[dict[str, Any], ...]:
        return tuple(r for r in self.results or () if r["final"])


@dataclass(frozen=True)
class ReadState:
    """Where the page's last read ended (ids and the log offset; -1: the log not read yet)."""

    metrics: int = 0
    log_offset: int = -1
    events: int = 0
    telemetry: int = 0
    with_results: bool = True


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


def _series(rows: list[dict[str, Any]]) -> dict[str, tuple[tuple[int, float, float], ...]]:
    return {
        key: tuple(
            (row["step"], row["value"], row["time"])
            for row in rows
            if row["key"] == key and not math.isnan(row["value"])
        )
        for key in PLOTTED_KEYS
    }


def read_detail(store: Store, run_id: str, state: ReadState) -> DetailSnapshot:
    """One incremental read for the run's page: what is new after the ids of ``state``. Result
    rows are read only when asked (the page asks until the run ended and they are in), and then
    only on the first read, once the run has ended, or when an evaluation's end was told since:
    a running run's periodic results are thousands of rows, not to be read again every refresh."""
    run = store.get_run(run_id)
    telemetry = tuple(store.telemetry(run.id, state.telemetry))
    events = tuple(store.events(run.id, state.events))
    results_new = (
        state.log_offset < 0
        or run.status in TERMINAL_STATUSES
        or any((found := EVAL_EVENT.match(event["message"])) and found.group(3) for event in events)
    )
    rows = store.metrics_since(run.id, state.metrics, keys=PLOTTED_KEYS)
    log_path = launcher.log_path(store, run.id)
    start, end, text = read_log(log_path, state.log_offset)
    run_dir = store.run_dir(run.id)
    return DetailSnapshot(
        run=run,
        last_id=rows[-1]["id"] if rows else state.metrics,
        series=_series(rows),
        results=tuple(store.results(run.id, final_only=False)) if state.with_results and results_new else None,
        log_offset=start,
        log_end=end,
        log_text=text,
        run_dir=run_dir,
        disk=run_disk_usage(run_dir).describe(),
        events=events,
        events_last_id=events[-1]["id"] if events else state.events,
        checkpoints=tuple((a["step"], a["path"], tree_bytes(a["path"])) for a in store.artifacts(run.id, "checkpoint")),
        log_path=log_path,
        telemetry=telemetry,
        telemetry_last_id=telemetry[-1]["id"] if telemetry else state.telemetry,
        waiting=launcher.schedule(store)[1].get(run.id) if run.status == "queued" else None,
    )


# -- the log tab ------------------------------------------------------------------------

#: The timestamp the worker's logging puts first on each line.
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def event_line(event: dict[str, Any]) -> str:
    """An event as a log line: the worker log's timestamp, ``event``, its level and message."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["time"]))
    return f"{stamp} event {event['level'].upper()} {event['message']}"


def merge_log(events: Iterable[dict[str, Any]], log_text: str) -> str:
    """New events and new log lines as one text in time order (stable: a traceback's lines
    stay under the line that began it; lines before any timestamp come first)."""
    entries: list[tuple[str, int, str]] = []
    stamp = ""
    for line in log_text.splitlines():
        found = _LOG_TIME.match(line)
        stamp = found.group(1) if found else stamp
        entries.append((stamp, len(entries), line))
    for event in events:
        line = event_line(event)
        entries.append((line[:19], len(entries), line))
    return "".join(f"{line}\n" for _, _, line in sorted(entries))


# -- the header ---------------------------------------------------------------------------


@dataclass
class Progress:
    """What the events tell of a run beyond its record: the device and precision it trains in,
    and what an evaluation costs (each periodic one measured from its start to its end event)."""

    device: str | None = None
    #: ``bf16 (auto: avx512_bf16)``, once the worker resolved it
    precision: str | None = None
    #: the evaluation under way: (step, final, started at)
    evaluating: tuple[int, bool, float] | None = None
    #: how far the evaluation under way is (``xquad-r candidates 50%``), once it has said
    evaluated: str | None = None
    eval_seconds: list[float] | None = None

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            message = event["message"]
            device = DEVICE_EVENT.match(message)
            if device:
                self.device = device.group(1)
            precision = precisions.EVENT.match(message)
            if precision:
                self.precision = precision.group(1)
            so_far = EVAL_PROGRESS_EVENT.match(message)
            if so_far:
                self.evaluated = so_far.group(1)
            found = EVAL_EVENT.match(message)
            if not found:
                continue
            step, final, done = int(found.group(1)), found.group(2) == "final", bool(found.group(3))
            self.evaluated = None
            if not done:
                self.evaluating = (step, final, event["time"])
            elif self.evaluating is not None and self.evaluating[:2] == (step, final):
                if not final:
                    self.eval_seconds = [*(self.eval_seconds or []), event["time"] - self.evaluating[2]]
                self.evaluating = None

    @property
    def eval_s(self) -> float | None:
        """The mean measured periodic evaluation, None before one ended."""
        return sum(self.eval_seconds) / len(self.eval_seconds) if self.eval_seconds else None


def evaluations_left(run: RunState, every: int | None, step: int) -> int:
    """Periodic evaluations still to come after ``step`` (none at the last step: the final one)."""
    if not every or not run.total_steps:
        return 0
    return max(0, (run.total_steps - 1) // every - step // every)


def eta(run: RunState, samples: list[tuple[int, float]], step: int, evaluation_s: float = 0.0) -> float | None:
    """Seconds left to the last step at this attempt's pace, from (step, time) samples of
    steps reported since the run (re)started, plus ``evaluation_s`` for the evaluations still
    to come; None before two samples."""
    if run.status != "running" or not run.total_steps:
        return None
    attempt = [(s, t) for s, t in samples if run.started_at is None or t >= run.started_at]
    if len(attempt) < 2 or attempt[-1][0] == attempt[0][0] or attempt[-1][1] == attempt[0][1]:
        return None
    (first_step, first_t), (last_step, last_t) = attempt[0], attempt[-1]
    per_step = (last_t - first_t) / (last_step - first_step)
    return max(0.0, (run.total_steps - step) * per_step) + evaluation_s


def ema(values: Sequence[float], state: tuple[float, int], beta: float = 0.9) -> tuple[list[float], tuple[float, int]]:
    """Exponential moving average of new ``values`` from ``state`` (running mean, count),
    bias-corrected as Adam's moments are, so the first points are not pulled to 0."""
    mean, count = state
    out = []
    for value in values:
        mean, count = beta * mean + (1 - beta) * value, count + 1
        out.append(mean / (1 - beta**count))
    return out, (mean, count)


# -- the evaluation curves ---------------------------------------------------------------


def eval_languages(results: Sequence[dict[str, Any]]) -> list[str]:
    """The query languages of the headline bench's evaluations, after the macro-average."""
    bench = headline_bench({r["bench"] for r in results})
    return [AVERAGE, *sorted(lang for lang in seen_of(results, bench) if lang)]


def eval_curves(results: Sequence[dict[str, Any]], lang: str = AVERAGE) -> dict[str, list[tuple[int, float]]]:
    """Per headline figure, its value at each evaluated step (periodic ones, then the final one
    at its step): the macro-average, or query language ``lang``'s figure."""
    bench = headline_bench({r["bench"] for r in results})
    by_step: dict[tuple[bool, int], list[dict[str, Any]]] = {}
    for row in results:
        if row["step"] is not None:
            by_step.setdefault((row["final"], row["step"]), []).append(row)
    curves: dict[str, list[tuple[int, float]]] = {label: [] for label, _, _ in EVAL_CURVES}
    for (_, step), rows in sorted(by_step.items()):
        for label, setting, metric in EVAL_CURVES:
            if lang == AVERAGE:
                value = headline(rows).get((bench, setting, metric))
            else:
                value = per_language(rows, bench, setting, metric).get(lang)
            if value is not None and not math.isnan(value):
                curves[label].append((step, value))
    return curves


# -- the files tab -----------------------------------------------------------------------


def files_lines(snap: DetailSnapshot) -> list[tuple[str, str]]:
    """(what, text) lines of the run's files: its id, directory, log and each checkpoint."""
    lines = [("run id", snap.run.id), ("run directory", str(snap.run_dir)), ("disk", snap.disk)]
    lines.append(("worker log", str(snap.log_path)))
    for step, path, size in snap.checkpoints:
        lines.append((f"checkpoint {step if step is not None else ''}".strip(), f"{path}  ({human_bytes(size)})"))
    if not snap.checkpoints:
        lines.append(("checkpoints", "none recorded"))
    return lines


# -- the languages tab -------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageFigures:
    """One query language of the run's page: final mAP per setting and language bias."""

    lang: str
    #: "seen" / "unseen" in training, "" when unknown
    seen: str
    mono: float | None
    cross: float | None
    multi: float | None
    rank_distance: float | None


def language_rows(results: list[dict[str, Any]], bench: str) -> list[LanguageFigures]:
    """Per query language (cross: the mean over its pairs), then the macro-averages as ``avg``."""
    per = [per_language(results, bench, setting, metric) for setting, metric in HEADLINE]
    seen = seen_of(results, bench)
    langs = sorted({lang for values in per for lang in values})
    rows = [LanguageFigures(lang, seen.get(lang) or "", *(values.get(lang) for values in per)) for lang in langs]
    figures = headline(results)
    if rows:
        rows.append(LanguageFigures(AVERAGE, "", *(figures.get((bench, s, m)) for s, m in HEADLINE)))
    return rows
