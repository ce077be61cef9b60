"""One run up close: status, elapsed and ETA, a live loss and learning-rate plot, final mAP
per language as bars, the X×Y cross-lingual heatmap, the worker log, the configuration and,
for a run on GPUs, their utilisation, memory, power and temperature."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Header, Log, Static, TabbedContent, TabPane

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.formatting import human_duration
from hybtui.reporting.tables import cross_heatmap
from hybtui.results import ResultRow
from hybtui.runs.records import TERMINAL_STATUSES, Run
from hybtui.runs.store import Store
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.viewmodels import (
    LOSS_KEY,
    LR_KEY,
    DetailSnapshot,
    elapsed,
    eta,
    headline_bench,
    read_detail,
    status_text,
)
from hybtui.tui.widgets.language_table import LanguageTable
from hybtui.tui.widgets.loss_plot import LossPlot
from hybtui.tui.widgets.telemetry_plot import TelemetryPlot

#: The tabs under the plot, with the key that opens each.
TABS = (("languages", "1"), ("heatmap", "2"), ("log", "3"), ("config", "4"))
#: The GPU tab and its key: present only once the run has GPU samples (a CPU run has none).
GPU_TAB = ("gpu", "5")
#: (step, time) samples kept for the ETA: enough to average over the recent pace.
ETA_SAMPLES = 200


def _heatmaps(results: tuple[dict, ...]) -> Group | Text:
    """Every benchmark's X×Y mAP matrix (rendered with the read, off the UI thread)."""
    rows = [ResultRow.from_dict(r) for r in results]
    benches = sorted({r.bench for r in rows if r.setting == "cross"})
    if not benches:
        return Text("no cross-lingual results yet: they are written when the run ends", style="dim")
    return Group(*(cross_heatmap(rows, bench) for bench in benches))


def _config_text(snap: DetailSnapshot) -> Text:
    """The run's files (directory and disk use: checkpoints are large) and its configuration."""
    run = snap.run
    text = inert.text(snap.run_dir, style="dim").append("\n").append_text(inert.text(snap.disk, style="dim"))
    text.append("\n\n")
    text.append_text(inert.text(run.config_error or "", style="red"))
    for key, value in sorted(run.config.items()):
        if value is not None:
            text.append(f"{inert.visible(key):<24}", style="bold").append(f"{inert.visible(value)}\n")
    return text


class RunDetailScreen(PolledScreen):
    """Reads only what is new (metrics after the last id, log bytes after the last offset,
    results until the run has ended and they are in) every ``refresh_s``, also while another
    screen covers it."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        *(Binding(key, f"show_tab('{tab}')", tab.capitalize()) for tab, key in TABS),
        Binding(GPU_TAB[1], f"show_tab('{GPU_TAB[0]}')", "GPU", show=False),
        Binding("q", "app.quit", "Quit"),
    ]
    READ_ERRORS = (HybtuiError, sqlite3.Error, OSError)

    def __init__(self, store_path: Path, run_id: str, refresh_s: float) -> None:
        super().__init__(store_path, refresh_s)
        self.run_id = run_id
        self._last_id = 0
        self._log_end = -1
        self._results_final = False
        self._samples: list[tuple[int, float]] = []
        self._telemetry_id = 0

    @property
    def heading(self) -> str:
        return inert.visible(self.run_id)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(inert.text(f"run {self.run_id}"), id="run-status")
        yield LossPlot(id="loss")
        with TabbedContent(id="detail-tabs", initial="languages-tab"):
            with TabPane("languages", id="languages-tab"):
                yield LanguageTable(id="languages")
            with TabPane("cross X×Y", id="heatmap-tab"):
                yield VerticalScroll(Static("", id="heatmap"))
            with TabPane("log", id="log-tab"):
                yield Log(id="worker-log", highlight=False)
            with TabPane("config", id="config-tab"):
                yield VerticalScroll(Static("", id="config"))
            with TabPane("gpu", id="gpu-tab"), Vertical():
                yield Static("", id="gpu-latest")
                yield TelemetryPlot(id="gpu-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TabbedContent).hide_tab("gpu-tab")

    def action_show_tab(self, tab: str) -> None:
        if tab != GPU_TAB[0] or self._telemetry_id:
            self.query_one(TabbedContent).active = f"{tab}-tab"

    def wants_read(self) -> bool:
        return True

    def read(self, store: Store) -> tuple[DetailSnapshot, Group | Text | None]:
        """What is new since the last read; the read state is the UI thread's, left alone
        while a read is in flight (never two at once)."""
        snapshot = read_detail(
            store, self.run_id, self._last_id, self._log_end, not self._results_final, self._telemetry_id
        )
        return snapshot, _heatmaps(snapshot.results) if snapshot.results is not None else None

    def show_error(self, error: str) -> None:
        self.query_one("#run-status", Static).update(inert.text(f"run {self.run_id}: {error}"))

    def show(self, data: tuple[DetailSnapshot, Group | Text | None]) -> None:
        snap, heatmaps = data
        run = snap.run
        self._last_id = snap.last_id
        self._samples = (self._samples + [(step, t) for step, _, t in snap.series[LOSS_KEY]])[-ETA_SAMPLES:]
        self.query_one("#run-status", Static).update(self._header(run, snap.waiting))
        plot = self.query_one(LossPlot)
        plot.extend(tuple((step, value) for step, value, _ in snap.series[LOSS_KEY]))
        plot.extend(tuple((step, value) for step, value, _ in snap.series[LR_KEY]), label="lr", side="right")
        if any(snap.series.values()) or not plot.series:
            plot.draw()
        terminal = run.status in TERMINAL_STATUSES
        self._results_final = terminal and (snap.results is not None or self._results_final)
        if snap.results is not None:
            benches = {r["bench"] for r in snap.results}
            self.query_one(LanguageTable).show(snap.results, headline_bench(benches))
            self.query_one("#heatmap", Static).update(heatmaps)
        self.query_one("#config", Static).update(_config_text(snap))
        self._show_log(snap)
        self._show_telemetry(snap)

    def _show_telemetry(self, snap: DetailSnapshot) -> None:
        """New GPU samples into the GPU tab, shown from the first of them on."""
        if not snap.telemetry:
            return
        if not self._telemetry_id:
            self.query_one(TabbedContent).show_tab("gpu-tab")
        self._telemetry_id = snap.telemetry_last_id
        plot = self.query_one(TelemetryPlot)
        plot.add_samples(snap.telemetry)
        plot.draw()
        self.query_one("#gpu-latest", Static).update(plot.summary())

    def _header(self, run: Run, waiting: str | None = None) -> Text:
        now = time.time()
        config = run.config
        header = status_text(run, now)
        if waiting:
            header.append(f" · {waiting}", style="yellow")
        header.append(f"   {inert.visible(run.name or '')}   elapsed {human_duration(elapsed(run, now))}")
        left = eta(run, self._samples)
        if left is not None:
            header.append(f"   ETA {human_duration(left)} + final evaluation")
        header.append(
            "\n"
            + inert.visible(
                f"{config.get('model')} · {config.get('sampler')} α={config.get('alpha')} · "
                f"batch {config.get('batch_size')} · lr {config.get('lr')} · seed {config.get('seed')}"
            ),
            style="dim",
        )
        for problem in (run.config_error, run.error):
            if problem and problem.strip():
                header.append(f"\n{inert.visible(problem.strip().splitlines()[-1])}", style="red")
        return header

    def _show_log(self, snap: DetailSnapshot) -> None:
        log = self.query_one(Log)
        if snap.log_offset != self._log_end:
            log.clear()  # first read, or the log was rewritten: this text starts from its tail
        if snap.log_text:
            log.write(inert.lines(snap.log_text))
        self._log_end = snap.log_end
