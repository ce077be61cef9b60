"""Home: every run in the store, live, sortable, with new run, cancel, resume, compare,
delete, export and the reproduction grids at a key press."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Input, Static

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.reporting import export as report
from hybtui.runs.store import Store
from hybtui.tui.run_filter import HINT, TERMS, RunFilter
from hybtui.tui.screens.compare import CompareScreen
from hybtui.tui.screens.grids import GridsScreen
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.screens.run_actions import RUN_ACTION_BINDINGS, RunActions
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.viewmodels import RunRow, read_runs
from hybtui.tui.widgets.keys_footer import KeysFooter
from hybtui.tui.widgets.runs_table import RunsTable, SortOrder, sort_rows

#: Rows the table holds at most: a screen shows a few dozen, and filling a table with
#: 10,000 rows takes seconds; the filter and the sort still see every run.
MAX_SHOWN = 1000
#: The share of time a huge store's periodic re-read may take.
READ_SHARE = 0.25
#: How many runs one comparison takes (more do not fit side by side).
COMPARE_MIN, COMPARE_MAX = 2, 12
#: The orders ``s`` cycles through (``S`` reverses one): mAP best first, rank distance (language
#: bias) lowest first.
SORTS = (
    SortOrder("newest first", "oldest first"),
    SortOrder("name a→z", "name z→a", "name"),
    SortOrder("status a→z", "status z→a", "status"),
    SortOrder("mono mAP, best first", "mono mAP, worst first", "mono", descending=True),
    SortOrder("cross mAP, best first", "cross mAP, worst first", "cross", descending=True),
    SortOrder("multi mAP, best first", "multi mAP, worst first", "multi", descending=True),
    SortOrder("rank distance, lowest first", "rank distance, highest first", "rank_distance"),
)
#: What ``e`` writes, each as ``<store>/exports/runs-<time>.<format>``.
EXPORT_FORMATS = ("md", "csv")


class RunsScreen(RunActions, PolledScreen):
    """The run table, re-read every ``refresh_s`` and applied in place. The footer holds the keys
    used most, in words short enough for 80 columns; ``?`` lists every key with its long form."""

    BINDINGS = [
        Binding("n", "new_run", "New", tooltip="New run"),
        Binding("space", "toggle_mark", "Mark", key_display="␣", tooltip="Mark or unmark the run"),
        Binding("m", "compare", "Compare", tooltip="Compare the marked runs"),
        Binding("slash", "filter", "Filter", tooltip="Filter: words, status: sampler: model: lang:"),
        Binding("s", "sort", "Sort", tooltip="Sort: next order"),
        Binding("S", "reverse_sort", "Reverse the order", show=False),
        *RUN_ACTION_BINDINGS,
        Binding("e", "export_runs", "Export", tooltip="Export the marked (or shown) runs"),
        Binding("g", "grids", "Grids", tooltip="Grids and reproduction reports"),
        Binding("U", "clear_marks", "Clear the marks", show=False),
        Binding("escape", "clear_filter", "Clear the filter", show=False),
        Binding("q", "app.quit", "Quit", tooltip="Quit (the runs go on)"),
        Binding("question_mark", "app.help", "Keys", tooltip="Every key"),
    ]

    def __init__(self, store_path: Path, refresh_s: float) -> None:
        super().__init__(store_path, refresh_s)
        self._rows: tuple[RunRow, ...] = ()
        self._next_read = 0.0
        self._order = 0
        self._reversed = False

    @property
    def heading(self) -> str:
        order = SORTS[self._order]
        return inert.visible(f"{self.store_path} · {order.reversed_label if self._reversed else order.label}")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder=f"/ filter by name, or by field: {TERMS}", id="filter", select_on_focus=False, compact=True
        )
        yield RunsTable(id="runs")
        yield Static(id="runs-empty")
        yield KeysFooter()

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

    @property
    def run_filter(self) -> RunFilter:
        return RunFilter.parse(self.query_one("#filter", Input).value)

    def _show(self) -> None:
        """The runs matching the filter, in the chosen order, at most MAX_SHOWN of them; where none
        match, the table's place says so."""
        text = self.query_one("#filter", Input).value.strip()
        shown = self.run_filter.select(self._rows)
        table = self.query_one(RunsTable)
        table.apply(sort_rows(shown, SORTS[self._order], self._reversed)[:MAX_SHOWN])
        empty = self.query_one("#runs-empty", Static)
        empty.display = not shown
        table.set_class(not shown, "-empty")
        if not shown:
            empty.update(
                inert.text(f"no run matches {text} — {HINT}")
                if text
                else inert.text("no run in this store yet — n starts one")
            )
        more = f" · first {MAX_SHOWN:,} of {len(shown):,} (/ to filter)" if len(shown) > MAX_SHOWN else ""
        self.sub_title = self.heading + more

    def action_sort(self) -> None:
        """Next order, in its usual direction; the cursor stays on its run."""
        self._order = (self._order + 1) % len(SORTS)
        self._reversed = False
        self._sorted()

    def action_reverse_sort(self) -> None:
        """The same order the other way round."""
        self._reversed = not self._reversed
        self._sorted()

    def _sorted(self) -> None:
        self._show()
        order = SORTS[self._order]
        self.notify(f"sorted: {order.reversed_label if self._reversed else order.label}", timeout=2)

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._show()

    @on(Input.Submitted, "#filter")
    def _leave_filter(self) -> None:
        self.query_one(RunsTable).focus()

    def action_clear_filter(self) -> None:
        """Escape, in the filter or not: every run shown again, the cursor in the table."""
        self.query_one("#filter", Input).value = ""
        self.query_one(RunsTable).focus()

    def action_clear_marks(self) -> None:
        table = self.query_one(RunsTable)
        if table.marked:
            self.notify(f"{len(table.marked)} mark(s) cleared", timeout=2)
        table.clear_marks()

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
        self.app.push_screen(CompareScreen(self.store_path, list(marked), min(self.refresh_s, 0.5)))

    def action_grids(self) -> None:
        self.app.push_screen(GridsScreen(self.store_path, self.refresh_s))

    def current_run(self) -> str | None:
        return self.query_one(RunsTable).highlighted_run

    def runs_to_delete(self) -> list[tuple[str, str]]:
        """The marked runs the filter shows, or the highlighted one when none of them is marked:
        ``d`` never deletes a run out of sight (``delete_note`` names the marked ones left alone)."""
        table = self.query_one(RunsTable)
        shown = {row.key: row.run.name or "" for row in self.run_filter.select(self._rows)}
        marked = [run_id for run_id in table.marked if run_id in shown]
        run_ids = marked or ([table.highlighted_run] if table.highlighted_run else [])
        return [(run_id, shown.get(run_id, "")) for run_id in run_ids]

    def delete_note(self) -> str:
        """How many marked runs the filter hides: they are not deleted."""
        shown = {row.key for row in self.run_filter.select(self._rows)}
        hidden = [run_id for run_id in self.query_one(RunsTable).marked if run_id not in shown]
        return f"{len(hidden)} marked run(s) hidden by the filter are left alone" if hidden else ""

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
