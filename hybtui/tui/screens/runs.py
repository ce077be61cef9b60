"""Home: every run in the store, live, sortable, with new run, cancel, resume, compare,
delete, export and the reproduction grids at a key press."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.reporting import export as report
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.tui.screens.compare import CompareScreen
from hybtui.tui.screens.confirm import ConfirmScreen
from hybtui.tui.screens.grids import GridsScreen
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.viewmodels import RunRow, read_runs
from hybtui.tui.widgets.runs_table import RunsTable, SortOrder, sort_rows

#: Rows the table holds at most: a screen shows a few dozen, and filling a table with
#: 10,000 rows takes seconds; the filter and the sort still see every run.
MAX_SHOWN = 1000
#: The share of time a huge store's periodic re-read may take.
READ_SHARE = 0.25
#: How many runs one comparison takes (more do not fit side by side).
COMPARE_MIN, COMPARE_MAX = 2, 6
#: The orders ``s`` cycles through: mAP best first, rank distance (language bias) lowest first.
SORTS = (
    SortOrder("newest first"),
    SortOrder("name", "name"),
    SortOrder("status", "status"),
    SortOrder("mono mAP, best first", "mono", descending=True),
    SortOrder("cross mAP, best first", "cross", descending=True),
    SortOrder("multi mAP, best first", "multi", descending=True),
    SortOrder("rank distance, lowest first", "rank_distance"),
)
#: What ``e`` writes, each as ``<store>/exports/runs-<time>.<format>``.
EXPORT_FORMATS = ("md", "csv")


class RunsScreen(PolledScreen):
    """The run table, re-read every ``refresh_s`` and applied in place."""

    BINDINGS = [
        Binding("question_mark", "app.help", "Keys"),  # the app's, listed first so the footer shows it at 80 columns
        Binding("n", "new_run", "New run"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("m", "compare", "Compare marked"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("r", "resume_run", "Resume"),
        Binding("d", "delete_runs", "Delete"),
        Binding("e", "export_runs", "Export"),
        Binding("g", "grids", "Grids"),
        Binding("escape", "leave_filter", "Back to runs", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    @dataclass
    class Deleted(Message):
        """The runs a delete removed, and why the others were kept."""

        gone: list[str]
        errors: list[str]

    @dataclass
    class Reported(Message):
        """What an export or the launcher answered (paths, errors: shown literally); with
        ``reload``, the runs are read again (their status changed)."""

        text: str
        title: str = ""
        severity: str = "information"
        reload: bool = False

    def __init__(self, store_path: Path, refresh_s: float) -> None:
        super().__init__(store_path, refresh_s)
        self._rows: tuple[RunRow, ...] = ()
        self._next_read = 0.0
        self._order = 0

    @property
    def heading(self) -> str:
        return inert.visible(f"{self.store_path} · {SORTS[self._order].label}")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="/ filter by name, model, sampler or status", id="filter", select_on_focus=False, compact=True
        )
        yield RunsTable(id="runs")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunsTable).focus()

    def wants_read(self) -> bool:
        """Not while covered, nor while the last read's share of the time would keep a core
        busy (a huge store: reads are then spaced to READ_SHARE of the time)."""
        return self.is_current and time.monotonic() >= self._next_read

    def read(self, store: Store) -> tuple[RunRow, ...]:
        started = time.monotonic()
        rows = read_runs(store)
        self._next_read = started + (time.monotonic() - started) / READ_SHARE
        return rows

    def show_error(self, error: str) -> None:
        self.sub_title = inert.visible(f"{self.store_path}: {error}")

    def show(self, data: tuple[RunRow, ...]) -> None:
        self._rows = data
        self._show()

    def _show(self) -> None:
        """The runs matching the filter, in the chosen order, at most MAX_SHOWN of them."""
        needle = self.query_one("#filter", Input).value.strip().lower()
        shown = tuple(row for row in self._rows if needle in row.search)
        self.query_one(RunsTable).apply(sort_rows(shown, SORTS[self._order])[:MAX_SHOWN])
        more = f" · first {MAX_SHOWN:,} of {len(shown):,} (/ to filter)" if len(shown) > MAX_SHOWN else ""
        self.sub_title = self.heading + more

    def action_sort(self) -> None:
        """Next order; the cursor stays on its run."""
        self._order = (self._order + 1) % len(SORTS)
        self._show()
        self.notify(f"sorted: {SORTS[self._order].label}", timeout=2)

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
            self.notify(
                f"mark {COMPARE_MIN} to {COMPARE_MAX} runs with space to compare them ({len(marked)} marked)",
                title="compare",
                severity="warning",
            )
            return
        self.app.push_screen(CompareScreen(self.store_path, list(marked)))

    def action_grids(self) -> None:
        self.app.push_screen(GridsScreen(self.store_path, self.refresh_s))

    def action_delete_runs(self) -> None:
        """Delete the marked runs, or the highlighted one when none is marked, once confirmed."""
        table = self.query_one(RunsTable)
        run_ids = list(table.marked) or ([table.highlighted_run] if table.highlighted_run else [])
        if not run_ids:
            self.notify("no run to delete", title="delete", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(run_ids)

        self.app.push_screen(
            ConfirmScreen(f"delete {len(run_ids)} run(s) and their checkpoints?", " ".join(run_ids)), answered
        )

    @work(thread=True, group="runs-act")
    def _delete(self, run_ids: list[str]) -> None:
        """Off the UI thread: removing a run's directory (checkpoints, caches) takes a while.
        The store refuses running runs; the marks of runs that are gone are dropped; the
        launcher fills a slot that a deleted run held."""
        errors = []
        try:
            with Store(self.store_path) as store:
                for run_id in run_ids:
                    try:
                        launcher.delete(store, run_id)
                    except HybtuiError as exc:
                        errors.append(str(exc))
                left = {run.id for run in store.list_runs()}
        except (HybtuiError, sqlite3.Error) as exc:
            self.post_message(self.Deleted([], [str(exc)]))
            return
        self.post_message(self.Deleted([run_id for run_id in run_ids if run_id not in left], errors))

    def on_runs_screen_deleted(self, message: Deleted) -> None:
        """Forget the deleted runs' marks, say what was refused."""
        self.query_one(RunsTable).unmark(message.gone)
        for error in message.errors:
            self.notify(inert.visible(error), title="cannot delete", severity="error", markup=False)
        if message.gone:
            self.notify(f"deleted {len(message.gone)} run(s)")
        self.reload()

    def action_export_runs(self) -> None:
        """Export the marked runs, or every run the filter shows when none is marked."""
        table = self.query_one(RunsTable)
        run_ids = list(table.marked) or [row.key.value for row in table.ordered_rows]
        if not run_ids:
            self.notify("no run to export", title="export", severity="warning")
            return
        self._export(run_ids)

    @work(thread=True, group="runs-act")
    def _export(self, run_ids: list[str]) -> None:
        """Write what `hybtui runs export` writes (every result row as CSV, headline figures
        as Markdown) into ``<store>/exports/``."""
        stem = self.store_path / "exports" / time.strftime("runs-%Y%m%d-%H%M%S")
        try:
            with Store(self.store_path) as store:
                runs = [store.get_run(run_id) for run_id in run_ids]
                results = {run.id: store.results(run.id, final_only=False) for run in runs}
            stem.parent.mkdir(exist_ok=True)
            paths = [stem.with_suffix(f".{fmt}") for fmt in EXPORT_FORMATS]
            for path, fmt in zip(paths, EXPORT_FORMATS):
                path.write_text(report.export(runs, results, fmt))
        except (HybtuiError, sqlite3.Error, OSError) as exc:
            self.post_message(self.Reported(str(exc), "cannot export", "error"))
            return
        self.post_message(self.Reported("\n".join(map(str, paths)), f"exported {len(runs)} run(s)"))

    def on_runs_screen_reported(self, message: Reported) -> None:
        self.notify(inert.lines(message.text), title=message.title, severity=message.severity, markup=False)
        if message.reload:
            self.reload()

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
            self.post_message(self.Reported(str(exc), f"cannot {verb}", "error"))
            return
        self.post_message(self.Reported(f"run {run_id}: {outcome}", reload=True))
