"""One run up close: status, a live loss curve, final mAP per language, the worker log."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, Static

from hybtui.errors import HybtuiError
from hybtui.store import Store
from hybtui.tui.snapshot import HEADLINE_BENCH, DetailSnapshot, elapsed, human_duration, read_detail, status_text
from hybtui.tui.widgets.language_table import LanguageTable
from hybtui.tui.widgets.loss_plot import LossPlot


class RunDetailScreen(Screen):
    """Reads only what is new (metrics after the last id, log bytes after the last offset)
    every ``refresh_s`` in a thread worker, one read at a time."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.quit", "Quit")]

    class Loaded(Message):
        """What changed for the run since the last read (or why it could not be read)."""

        def __init__(self, snapshot: DetailSnapshot | None, error: str | None = None) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.error = error

    def __init__(self, store_path: Path, run_id: str, refresh_s: float) -> None:
        super().__init__()
        self.store_path = store_path
        self.run_id = run_id
        self.refresh_s = refresh_s
        self._last_id = 0
        self._log_end = -1
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run {self.run_id}", id="run-status")
        yield LossPlot(id="loss")
        with Horizontal(id="detail-bottom"):
            yield LanguageTable(id="languages")
            yield Log(id="worker-log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self.reload()
        self.set_interval(self.refresh_s, self.reload)

    def reload(self) -> None:
        if not self._loading:
            self._loading = True
            self._read(self._last_id, self._log_end)

    @work(thread=True, group="detail-read")
    def _read(self, after_id: int, log_offset: int) -> None:
        try:
            with Store(self.store_path) as store:
                self.post_message(self.Loaded(read_detail(store, self.run_id, after_id, log_offset)))
        except (HybtuiError, sqlite3.Error, OSError) as exc:
            self.post_message(self.Loaded(None, error=str(exc)))

    def on_run_detail_screen_loaded(self, message: Loaded) -> None:
        self._loading = False
        status = self.query_one("#run-status", Static)
        if message.snapshot is None:
            status.update(f"run {self.run_id}: {message.error}")
            return
        snap = message.snapshot
        run = snap.run
        self._last_id = snap.last_id
        header = status_text(run)
        header.append(f"   {run['name'] or ''}   elapsed {human_duration(elapsed(run, time.time()))}")
        if run["error"]:
            header.append(f"\n{run['error'].strip().splitlines()[-1]}", style="red")
        status.update(header)
        self.query_one(LossPlot).extend(snap.points)
        benches = [r["bench"] for r in snap.results]
        self.query_one(LanguageTable).show(snap.results, HEADLINE_BENCH if HEADLINE_BENCH in benches or
                                           not benches else benches[0])
        log = self.query_one(Log)
        if snap.log_offset != self._log_end:
            log.clear()  # first read, or the log was rewritten: this text starts from its tail
        if snap.log_text:
            log.write(snap.log_text)
        self._log_end = snap.log_end
