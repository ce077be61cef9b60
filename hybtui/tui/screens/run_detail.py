"""One run's page: status, elapsed time and ETA, the device it trains on; tabs that take the
whole body (so a plot has rows even at 80x24) for the loss (raw and smoothed, validation,
learning rate), the evaluations over steps, final mAP per language, the X×Y heatmap, the
events merged with the worker log, the run's files, its configuration and its GPUs; and the
run list's actions (cancel, resume, delete) on this run."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Header, Log, Static, TabbedContent, TabPane

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.formatting import human_duration
from hybtui.results import AVERAGE
from hybtui.runs.records import TERMINAL_STATUSES, Run
from hybtui.runs.store import Store
from hybtui.tui.run_page import (
    LR_KEY,
    VALIDATION_KEY,
    DetailSnapshot,
    Progress,
    ReadState,
    ema,
    eta,
    eval_curves,
    eval_languages,
    evaluations_left,
    files_lines,
    merge_log,
    read_detail,
)
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.screens.run_actions import RUN_ACTION_BINDINGS, RunActions
from hybtui.tui.viewmodels import LOSS_KEY, elapsed, headline_bench, status_text
from hybtui.tui.widgets.eval_plot import EvalPlot
from hybtui.tui.widgets.heatmap import Heatmap
from hybtui.tui.widgets.language_table import LanguageTable
from hybtui.tui.widgets.loss_plot import LossPlot, Series
from hybtui.tui.widgets.telemetry_plot import TelemetryPlot

#: The tabs, with the key that opens each (also written on the tab).
TABS = (
    ("loss", "1"),
    ("evaluations", "2"),
    ("languages", "3"),
    ("heatmap", "4"),
    ("log", "5"),
    ("files", "6"),
    ("config", "7"),
)
#: The GPU tab and its key: present only once the run has GPU samples (a CPU run has none).
GPU_TAB = ("gpu", "8")
#: (step, time) samples kept for the ETA: enough to average over the recent pace.
ETA_SAMPLES = 200
SMOOTHED = "smoothed"


def _config_text(run: Run) -> Text:
    text = inert.text(run.config_error or "", style="red")
    for key, value in sorted(run.config.items()):
        if value is not None:
            text.append(f"{inert.visible(key):<24}", style="bold").append(f"{inert.visible(value)}\n")
    return text


def _files_text(snap: DetailSnapshot) -> Text:
    """Each file on a line of its own under its label, so a long path wraps whole at 80 columns."""
    text = Text()
    for label, value in files_lines(snap):
        text.append(f"{label}\n", style="bold").append_text(inert.text(value)).append("\n")
    return text.append("y copies the run id, p the run directory (OSC 52)", style="dim")


def sampler_words(run: Run) -> str:
    """``zero-shot`` for a run of 0 steps (evaluated as it is), α only for a hybrid run."""
    sampler = run.config.get("sampler")
    if run.total_steps == 0:
        return "zero-shot"
    return f"hybrid α={run.config.get('alpha')}" if sampler == "hybrid" else inert.visible(sampler or "")


class RunDetailScreen(RunActions, PolledScreen):
    """Reads only what is new (metrics and events after the last ids, log bytes after the last
    offset, results until the run has ended and they are in) every ``refresh_s``, also while
    another screen covers it."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        *RUN_ACTION_BINDINGS,
        Binding("s", "toggle_smoothing", "Smooth"),
        Binding("l", "next_language", "Lang"),
        Binding("m", "next_metric", "Metric", show=False),
        Binding("y", "copy('id')", "Copy id"),
        Binding("p", "copy('dir')", "Copy dir"),
        *(Binding(key, f"show_tab('{tab}')", tab.capitalize(), show=False) for tab, key in (*TABS, GPU_TAB)),
        Binding("q", "app.quit", "Quit", show=False),
    ]
    READ_ERRORS = (HybtuiError, sqlite3.Error, OSError)

    def __init__(self, store_path: Path, run_id: str, refresh_s: float) -> None:
        super().__init__(store_path, refresh_s)
        self.run_id = run_id
        self.run: Run | None = None
        self.run_dir: Path | None = None
        self._state = ReadState()
        self._results_final = False
        self._samples: list[tuple[int, float]] = []
        self._smoothed = Series()
        self._smoothing = True
        self._ema = (0.0, 0)
        self._progress = Progress()
        self._results: tuple[dict, ...] = ()
        self._lang = AVERAGE
        self._step = 0

    @property
    def heading(self) -> str:
        return inert.visible(self.run_id)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(inert.text(f"run {self.run_id}"), id="run-status")
        with TabbedContent(id="detail-tabs", initial="loss-tab"):
            with TabPane("1 loss", id="loss-tab"):
                yield LossPlot(id="loss")
            with TabPane("2 evaluations", id="evaluations-tab"):
                yield EvalPlot(id="eval-plot")
            with TabPane("3 languages", id="languages-tab"):
                yield LanguageTable(id="languages")
            with TabPane("4 X×Y", id="heatmap-tab"):
                yield Heatmap(id="heatmap")
            with TabPane("5 log", id="log-tab"):
                yield Log(id="worker-log", highlight=False)
            with TabPane("6 files", id="files-tab"):
                yield VerticalScroll(Static("", id="files"))
            with TabPane("7 config", id="config-tab"):
                yield VerticalScroll(Static("", id="config"))
            with TabPane("8 gpu", id="gpu-tab"), Vertical():
                yield Static("", id="gpu-latest")
                yield TelemetryPlot(id="gpu-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TabbedContent).hide_tab("gpu-tab")

    def action_show_tab(self, tab: str) -> None:
        if tab != GPU_TAB[0] or self._state.telemetry:
            self.query_one(TabbedContent).active = f"{tab}-tab"

    # -- actions ----------------------------------------------------------------------

    def current_run(self) -> str | None:
        return self.run_id

    def runs_to_delete(self) -> list[tuple[str, str]]:
        return [(self.run_id, self.run.name or "" if self.run else "")]

    def runs_changed(self, gone: list[str]) -> None:
        """A deleted run has no page: back to the list. Otherwise show its new status."""
        if self.run_id in gone:
            self.app.pop_screen()
        else:
            self.reload()

    def action_copy(self, what: str) -> None:
        """The run id or directory to the clipboard (OSC 52: also over ssh and in tmux)."""
        text = self.run_id if what == "id" else str(self.run_dir or "")
        self.app.copy_to_clipboard(text)
        self.notify(inert.visible(text), title=f"copied the run {'id' if what == 'id' else 'directory'}", markup=False)

    def action_toggle_smoothing(self) -> None:
        self._smoothing = not self._smoothing
        plot = self.query_one(LossPlot)
        plot.series.pop(SMOOTHED, None)
        if self._smoothing and len(self._smoothed):
            plot.series[SMOOTHED] = self._smoothed
        plot.draw()

    def action_next_language(self) -> None:
        """Cycle the evaluation curves through the macro-average and each query language."""
        langs = eval_languages(self._results)
        self._lang = langs[(langs.index(self._lang) + 1) % len(langs)] if self._lang in langs else AVERAGE
        self.query_one(EvalPlot).show_curves(eval_curves(self._results, self._lang), self._lang)
        self.action_show_tab("evaluations")

    def action_next_metric(self) -> None:
        """The X×Y matrix's next metric (mAP, R@1, nDCG@10, …), shown."""
        self.query_one(Heatmap).action_next_metric()
        self.action_show_tab("heatmap")

    # -- reading and showing ---------------------------------------------------------------

    def wants_read(self) -> bool:
        return True

    def read(self, store: Store) -> DetailSnapshot:
        """What is new since the last read; the read state is the UI thread's, left alone
        while a read is in flight (never two at once)."""
        return read_detail(store, self.run_id, self._state)

    def show_error(self, error: str) -> None:
        self.query_one("#run-status", Static).update(inert.text(f"run {self.run_id}: {error}"))

    def show(self, snap: DetailSnapshot) -> None:
        run = self.run = snap.run
        self.run_dir = snap.run_dir
        self._progress.add(snap.events)
        losses = snap.series[LOSS_KEY]
        self._step = max(self._step, run.step or 0, *(step for step, _, _ in losses[-1:]))
        self._samples = (self._samples + [(step, t) for step, _, t in losses])[-ETA_SAMPLES:]
        self.query_one("#run-status", Static).update(self._header(run, snap.waiting))
        self._show_losses(snap)
        terminal = run.status in TERMINAL_STATUSES
        self._results_final = terminal and (snap.results is not None or self._results_final)
        if snap.results is not None:
            self._show_results(snap)
        self.query_one("#files", Static).update(_files_text(snap))
        self.query_one("#config", Static).update(_config_text(run))
        self._show_log(snap)
        self._show_telemetry(snap)
        self._state = ReadState(
            snap.last_id, snap.log_end, snap.events_last_id, snap.telemetry_last_id, not self._results_final
        )

    def _show_losses(self, snap: DetailSnapshot) -> None:
        """New points of the loss (raw and its moving average), validation loss and learning rate."""
        plot = self.query_one(LossPlot)
        if snap.run.total_steps == 0:
            plot.empty_title = "zero-shot: evaluated without training (no loss)"
        losses = tuple((step, value) for step, value, _ in snap.series[LOSS_KEY])
        plot.extend(losses)
        if losses:
            smoothed, self._ema = ema([value for _, value in losses], self._ema)
            self._smoothed.extend([step for step, _ in losses], smoothed)
            if self._smoothing:
                plot.series.setdefault(SMOOTHED, self._smoothed)
        plot.extend(tuple((s, v) for s, v, _ in snap.series[VALIDATION_KEY]), label="validation")
        plot.extend(tuple((s, v) for s, v, _ in snap.series[LR_KEY]), label="lr", side="right")
        if any(snap.series.values()) or not plot.series:
            plot.draw()

    def _show_results(self, snap: DetailSnapshot) -> None:
        if snap.results == self._results:
            return
        results = self._results = snap.results or ()
        final = snap.final_results
        self.query_one(LanguageTable).show(final, headline_bench({r["bench"] for r in final}))
        self.query_one(Heatmap).show(final)
        self.query_one(EvalPlot).show_curves(eval_curves(results, self._lang), self._lang)

    def _show_telemetry(self, snap: DetailSnapshot) -> None:
        """New GPU samples into the GPU tab, shown from the first of them on."""
        if not snap.telemetry:
            return
        if not self._state.telemetry:
            self.query_one(TabbedContent).show_tab("gpu-tab")
        plot = self.query_one(TelemetryPlot)
        plot.add_samples(snap.telemetry)
        plot.draw()
        self.query_one("#gpu-latest", Static).update(plot.summary())

    def _time_left(self, run: Run) -> str:
        """``ETA 3m + final evaluation``, or what the evaluation under way has taken so far."""
        evaluating, each = self._progress.evaluating, self._progress.eval_s
        if run.status == "running" and evaluating is not None:
            step, final, since = evaluating
            kind = "final" if final else f"step {step}"
            so_far = f": {self._progress.evaluated}" if self._progress.evaluated else ""
            return f"   {kind} evaluation for {human_duration(time.time() - since)}{so_far}"
        left = evaluations_left(run, run.config.get("eval_every"), self._step)
        seconds = eta(run, self._samples, self._step, left * (each or 0.0))
        if seconds is None:
            return ""
        counted = f" ({left} evaluations counted)" if left and each else ""
        return f"   ETA {human_duration(seconds)}{counted} + final evaluation"

    def _header(self, run: Run, waiting: str | None = None) -> Text:
        now = time.time()
        config = run.config
        shown = dataclasses.replace(run, step=self._step) if run.status == "running" else run
        header = status_text(shown, now)
        if waiting:
            header.append(f" · {waiting}", style="yellow")
        header.append_text(inert.text(f"   {run.name or ''}"))
        header.append(f"   elapsed {human_duration(elapsed(run, now))}{self._time_left(run)}")
        device = self._progress.device or f"device {config.get('device')}"
        if self._progress.precision:  # the word alone (bf16 / fp32); why is in the log
            device += f" {self._progress.precision.split()[0]}"
        header.append(
            "\n"
            + inert.visible(
                f"{config.get('model')} · {sampler_words(run)} · {device} · "
                f"batch {config.get('batch_size')} · lr {config.get('lr')} · seed {config.get('seed')}"
            ),
            style="dim",
        )
        for problem in (run.config_error, run.error):
            if problem and problem.strip():
                header.append(f"\n{inert.visible(problem.strip().splitlines()[-1])}", style="red")
        return header

    def _show_log(self, snap: DetailSnapshot) -> None:
        """New events and log lines, merged in time order, under what is shown."""
        log = self.query_one(Log)
        if 0 <= self._state.log_offset != snap.log_offset:
            log.clear()  # the log was rewritten: this text starts from its tail
        text = merge_log(snap.events, snap.log_text)
        if text:
            log.write(inert.lines(text))
