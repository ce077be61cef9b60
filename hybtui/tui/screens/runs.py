"""Home: every run in the store, live, with new run, cancel, resume and compare at a key press."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input

from hybtui import launcher
from hybtui.errors import HybtuiError
from hybtui.store import Store
from hybtui.tui.screens.compare import CompareScreen
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.snapshot import RunRow, read_runs
from hybtui.tui.widgets.runs_table import RunsTable

#: How many runs one comparison takes (more do not fit side by side).
COMPARE_MIN, COMPARE_MAX = 2, 6


class RunsScreen(Screen):
    """The run table, re-read every ``refresh_s`` in a thread worker and applied in place."""

    BINDINGS = [
        Binding("n", "new_run", "New run"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("m", "compare", "Compare marked"),
        Binding("slash", "filter", "Filter"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("r", "resume_run", "Resume"),
        Binding("escape", "leave_filter", "Back to runs", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    class Loaded(Message):
        """A fresh snapshot of the run list (or why it could not be read)."""

        def __init__(self, rows: tuple[RunRow, ...], error: str | None = None) -> None:
            super().__init__()
            self.rows = rows
            self.error = error

    def __init__(self, store_path: Path, refresh_s: float) -> None:
        super().__init__()
        self.store_path = store_path
        self.refresh_s = refresh_s
        self._rows: tuple[RunRow, ...] = ()
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter by name, model, sampler or status", id="filter", select_on_focus=False,
                    compact=True)
        yield RunsTable(id="runs")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.store_path)
        self.query_one(RunsTable).focus()
        self.reload()
        self.set_interval(self.refresh_s, self.reload)

    def reload(self) -> None:
        """Start a read unless one is in flight or another screen covers this one."""
        if self._loading or not self.is_current:
            return
        self._loading = True
        self._read_runs()

    @work(thread=True, group="runs-read")
    def _read_runs(self) -> None:
        try:
            with Store(self.store_path) as store:
                self.post_message(self.Loaded(read_runs(store)))
        except (HybtuiError, sqlite3.Error) as exc:
            self.post_message(self.Loaded(self._rows, error=str(exc)))

    def on_runs_screen_loaded(self, message: Loaded) -> None:
        self._loading = False
        if message.error:
            self.sub_title = f"{self.store_path}: {message.error}"
            return
        self.sub_title = str(self.store_path)
        self._rows = message.rows
        self._show()

    def _show(self) -> None:
        needle = self.query_one("#filter", Input).value.strip().lower()
        self.query_one(RunsTable).apply(tuple(row for row in self._rows if needle in row.search))

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._show()

    @on(Input.Submitted, "#filter")
    def action_leave_filter(self) -> None:
        self.query_one(RunsTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    @on(DataTable.RowSelected, "#runs")
    def _open(self) -> None:
        run_id = self.query_one(RunsTable).highlighted_run
        if run_id is not None:
            self.app.push_screen(RunDetailScreen(self.store_path, run_id, min(self.refresh_s, 0.5)))

    def action_new_run(self) -> None:
        self.app.push_screen(NewRunScreen(self.store_path, min(self.refresh_s, 0.5)))

    def action_toggle_mark(self) -> None:
        table = self.query_one(RunsTable)
        if table.highlighted_run is not None:
            table.toggle_mark(table.highlighted_run)

    def action_compare(self) -> None:
        marked = self.query_one(RunsTable).marked
        if not COMPARE_MIN <= len(marked) <= COMPARE_MAX:
            self.notify(f"mark {COMPARE_MIN} to {COMPARE_MAX} runs with space to compare them "
                        f"({len(marked)} marked)", title="compare", severity="warning")
            return
        self.app.push_screen(CompareScreen(self.store_path, list(marked)))

    def action_cancel_run(self) -> None:
        self._act("cancel")

    def action_resume_run(self) -> None:
        self._act("resume")

    def _act(self, verb: str) -> None:
        run_id = self.query_one(RunsTable).highlighted_run
        if run_id is not None:
            self._launch(verb, run_id)

    @work(thread=True, group="runs-act")
    def _launch(self, verb: str, run_id: str) -> None:
        """Ask the launcher (it may signal or spawn a worker process) off the UI thread."""
        try:
            with Store(self.store_path) as store:
                if verb == "cancel":
                    outcome = launcher.cancel(store, run_id)
                else:
                    launcher.resume(store, run_id)
                    outcome = "queued again"
        except (HybtuiError, sqlite3.Error, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), title=f"cannot {verb}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"run {run_id}: {outcome}")
        self.app.call_from_thread(self.reload)
