"""Runs side by side: the CLI's comparison tables (parameters that differ, headline figures
with deltas against the first run, per-language mAP) under the runs' loss curves overlaid."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.reporting.compare import comparison
from hybtui.runs.store import Store
from hybtui.tui.viewmodels import LOSS_KEY
from hybtui.tui.widgets.loss_plot import LossPlot


class CompareScreen(Screen):
    """A one-off read of the runs (comparisons are of finished runs; reopen to refresh)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.quit", "Quit")]

    @dataclass
    class Loaded(Message):
        """The comparison tables and each run's loss curve (or why they could not be read)."""

        tables: list
        curves: dict[str, list[tuple[int, float]]]
        error: str | None = None

    def __init__(self, store_path: Path, run_ids: list[str]) -> None:
        super().__init__()
        self.store_path = store_path
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        yield Header()
        yield LossPlot(id="compare-loss")
        yield VerticalScroll(Static("reading runs…"), id="compare-tables")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = inert.visible("compare " + " ".join(self.run_ids))
        self.query_one("#compare-tables").focus()
        self._read()

    @work(thread=True, group="compare-read")
    def _read(self) -> None:
        try:
            with Store(self.store_path) as store:
                runs = [store.get_run(run_id) for run_id in self.run_ids]
                results = {run.id: store.results(run.id) for run in runs}
                curves = {
                    inert.visible(f"{run.id} {run.name or ''}".strip()): [
                        (m["step"], m["value"])
                        for m in store.metrics_since(run.id, keys=[LOSS_KEY])
                        if not math.isnan(m["value"])
                    ]
                    for run in runs
                }
        except (HybtuiError, sqlite3.Error) as exc:
            self.post_message(self.Loaded([], {}, error=str(exc)))
            return
        self.post_message(self.Loaded(comparison(runs, results), curves))

    def on_compare_screen_loaded(self, message: Loaded) -> None:
        tables = self.query_one("#compare-tables", VerticalScroll)
        tables.remove_children()
        if message.error:
            tables.mount(Static(inert.text(message.error), classes="error"))
            return
        tables.mount_all(Static(table) for table in message.tables)
        plot = self.query_one(LossPlot)
        for label, points in message.curves.items():
            plot.extend(tuple(points), label=label)
        plot.draw()
