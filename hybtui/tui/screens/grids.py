"""The grids of `hybtui reproduce` and, for each, every table of its report.md (Table 1 and
hybrid's deltas, mAP by seen / unseen languages, the per-language figures with their bars,
and the runs, each openable), live until all its runs have ended. Whichever screen sees a
grid that has ended without a current report.md writes it (as its last worker and the CLI do)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Group
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from hybtui import inert
from hybtui.formatting import human_duration
from hybtui.reporting.grid_report import build_report, is_stale, publish, write_if_ended
from hybtui.runs import grid as reproduce
from hybtui.runs.store import Store
from hybtui.tui.screens.grid_tables import GridRow, deltas_table, languages_table, run_rows, seen_table, summary, table1
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.widgets.grid_bars import GridBars
from hybtui.tui.widgets.runs_table import LiveTable

#: Longest pause between two reads of an unfinished grid's report (it reads every run's results).
REPORT_REFRESH_S = 2.0
#: The keys of both grid screens, before their own.
BACK_AND_QUIT = (Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.quit", "Quit"))
#: The report's tabs: (pane id, key, title, id of what it shows).
TABS = (
    ("tab-table1", "1", "Table 1", "grid-tables"),
    ("tab-seen", "2", "Seen/unseen", "grid-seen"),
    ("tab-languages", "3", "Languages", "grid-languages"),
    ("tab-runs", "4", "Runs", "grid-runs"),
)


class ReportRead(NamedTuple):
    """One read of a grid: its report's figures, whether every run has ended, and then
    where its report.md is (relative to the store) or why it could not be written."""

    rep: dict[str, Any]
    done: bool
    report: str | None


def _unwritten(write: Callable[[], object]) -> str | None:
    """Write a grid's report; why it could not be written (a read-only or full store), if not:
    the app still shows the grid, and the CLI or the grid's worker may write it."""
    try:
        write()
    except OSError as exc:
        return f"report.md not written ({type(exc).__name__}: {exc})"
    return None


def read_grids(store: Store) -> tuple[GridRow, ...]:
    """Every grid, newest first, with how many of its runs have finished; a grid that has
    ended gets its report.md written here if no one has yet (where the store refuses it, its
    report screen says why)."""
    now = time.time()
    rows = []
    for grid in store.list_grids():
        runs = reproduce.grid_runs(store, grid)
        finished = sum(1 for _, run in runs if run and run.status == "finished")
        if reproduce.is_done(runs):
            _unwritten(lambda grid=grid, runs=runs: write_if_ended(store, grid, runs))
        rows.append(
            GridRow(
                grid["id"],
                (
                    inert.text(grid["id"]),
                    inert.text(grid["name"]),
                    f"{finished}/{len(runs)}",
                    human_duration(now - grid["created_at"]),
                ),
            )
        )
    return tuple(rows)


class GridsTable(LiveTable):
    """Grids newest first; enter opens the highlighted grid's report."""

    COLUMNS = (("id", "id"), ("name", "name"), ("runs", "runs finished"), ("age", "age"))
    BINDINGS = [Binding("enter", "select_cursor", "Open report")]


class GridRunsTable(LiveTable):
    """A grid's runs in its cells' order; enter opens the highlighted run's page."""

    COLUMNS = (("sampler", "sampler"), ("seed", "seed"), ("status", "status"), ("run", "run"), ("wall", "wall"))
    BINDINGS = [Binding("enter", "select_cursor", "Open run")]


class GridsScreen(PolledScreen):
    """The grids, re-read like the run list (their runs finish as it is shown)."""

    BINDINGS = list(BACK_AND_QUIT)
    heading = "grids of `hybtui reproduce`"

    def compose(self) -> ComposeResult:
        yield Header()
        yield GridsTable(id="grids")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(GridsTable).focus()

    def read(self, store: Store) -> tuple[GridRow, ...]:
        return read_grids(store)

    def show(self, data: tuple[GridRow, ...]) -> None:
        self.query_one(GridsTable).apply(data)
        if not data:
            self.sub_title = f"{self.heading}: none yet (start one with `hybtui reproduce --quick`)"

    @on(DataTable.RowSelected, "#grids")
    def _open(self) -> None:
        grid_id = self.query_one(GridsTable).highlighted_key
        if grid_id is not None:
            self.app.push_screen(GridReportScreen(self.store_path, grid_id, min(REPORT_REFRESH_S, 2 * self.refresh_s)))


class GridReportScreen(PolledScreen):
    """Every table of a grid's report.md, re-read until every run has ended; then its
    report.md is written if the grid's last worker has not written it yet."""

    BINDINGS = [*BACK_AND_QUIT, *(Binding(key, f"tab('{pane}')", title) for pane, key, title, _ in TABS)]

    def __init__(self, store_path: Path, grid_id: str, refresh_s: float = REPORT_REFRESH_S) -> None:
        super().__init__(store_path, refresh_s)
        self.grid_id = grid_id
        self._deleted: set[str] = set()

    @property
    def heading(self) -> str:
        return f"grid {self.grid_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the grid…", id="grid-summary")
        with TabbedContent(id="grid-tabs"):
            for pane, key, title, content in TABS:
                with TabPane(f"{key} {title}", id=pane):
                    if pane == "tab-runs":
                        yield GridRunsTable(id=content)
                    else:
                        yield VerticalScroll(Static(id=content))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tab-table1 VerticalScroll").focus()

    def read(self, store: Store) -> ReportRead:
        grid = store.get_grid(self.grid_id)
        pairs = reproduce.grid_runs(store, grid)
        rep = build_report(store, self.grid_id)
        done = reproduce.is_done(pairs)
        if not done:
            return ReportRead(rep, False, None)
        failed = _unwritten(lambda: publish(store, rep)) if is_stale(store, grid, pairs) else None
        return ReportRead(rep, True, failed or f"Report: grids/{grid['id']}/report.md in the store")

    def show(self, data: ReportRead) -> None:
        if data.done and self.polling is not None:
            self.polling.stop()
        self.query_one("#grid-summary", Static).update(summary(data.rep, data.done, data.report))
        self.query_one(GridRunsTable).apply(run_rows(data.rep))
        self._deleted = {run["run_id"] for run in data.rep["runs"] if run["status"] == "deleted"}
        benches = data.rep["benchmarks"]
        tables = [t for bench, f in benches.items() for t in (table1(bench, f), f["deltas"] and deltas_table(f)) if t]
        self.query_one("#grid-tables", Static).update(
            Group(*tables) if tables else "no results yet: Table 1 fills in as runs finish"
        )
        seen = [t for bench, f in benches.items() if (t := seen_table(bench, f)) is not None]
        self.query_one("#grid-seen", Static).update(
            Group(*seen) if seen else "no seen / unseen averages yet: they fill in as runs finish"
        )
        self._show_languages(benches)

    def _show_languages(self, benches: dict[str, Any]) -> None:
        """Per benchmark, the per-language table, then its bars."""
        self.query_one("#grid-languages", Static).update(
            Group(*(languages_table(bench, f) for bench, f in benches.items()))
            if benches
            else "no per-language figures yet: they fill in as runs finish"
        )
        scroll = self.query_one("#tab-languages VerticalScroll", VerticalScroll)
        plots = {plot.bench: plot for plot in scroll.query(GridBars)}
        for bench, figures in benches.items():
            if bench not in plots:
                plots[bench] = GridBars(bench, classes="grid-bars")
                scroll.mount(plots[bench])
            plots[bench].show(figures["languages"])

    @on(DataTable.RowSelected, "#grid-runs")
    def _open_run(self) -> None:
        run_id = self.query_one(GridRunsTable).highlighted_key
        if run_id in self._deleted:
            self.notify(inert.visible(f"run {run_id} was deleted: it has no page"), severity="warning")
        elif run_id is not None:
            self.app.push_screen(RunDetailScreen(self.store_path, run_id, min(self.refresh_s, 0.5)))

    def action_tab(self, pane: str) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = pane
        tabs.active_pane.query_one("VerticalScroll, DataTable").focus()
