"""Home: every run in the store, live, sortable, with new run, cancel, resume, compare,
delete, export and the reproduction grids at a key press."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.reporting import export as report
from hybtui.runs.store import Store
from hybtui.tui.screens.compare import CompareScreen
from hybtui.tui.screens.grids import GridsScreen
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.screens.run_actions import RUN_ACTION_BINDINGS, RunActions
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


class RunsScreen(RunActions, PolledScreen):
    """The run table, re-read every ``refresh_s`` and applied in place."""

    BINDINGS = [
        Binding("question_mark", "app.help", "Keys"),  # the app's, listed first so the footer shows it at 80 columns
        Binding("n", "new_run", "New run"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("m", "compare", "Compare marked"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        *RUN_ACTION_BINDINGS,
        Binding("e", "export_runs", "Export"),
        Binding("g", "grids", "Grids"),
        Binding("escape", "leave_filter", "Back to runs", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

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
        self.app.push_screen(NewRunScreen(self.store_path))

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

    def current_run(self) -> str | None:
        return self.query_one(RunsTable).highlighted_run

    def runs_to_delete(self) -> list[tuple[str, str]]:
        """The marked runs, or the highlighted one when none is marked."""
        table = self.query_one(RunsTable)
        run_ids = list(table.marked) or ([table.highlighted_run] if table.highlighted_run else [])
        names = {row.key: row.run.name or "" for row in self._rows}
        return [(run_id, names.get(run_id, "")) for run_id in run_ids]

    def runs_changed(self, gone: list[str]) -> None:
        """Forget the deleted runs' marks; read the runs again."""
        self.query_one(RunsTable).unmark(gone)
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
