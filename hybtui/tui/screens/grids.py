"""The grids of `hybtui reproduce` and, for each, its report as the CLI prints it: Table 1,
hybrid's deltas, multi mAP per language, and the status of every run, live until all have ended."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from hybtui import inert
from hybtui.formatting import figure, human_duration
from hybtui.reporting.grid_report import TABLE1, build_report
from hybtui.runs import grid as reproduce
from hybtui.runs.store import Store
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.viewmodels import STATUS_STYLES
from hybtui.tui.widgets.grid_bars import GridBars
from hybtui.tui.widgets.runs_table import LiveTable

#: Longest pause between two reads of an unfinished grid's report (it reads every run's results).
REPORT_REFRESH_S = 2.0
#: Table 1 headings where a decrease is the improvement.
LOWER_IS_BETTER = frozenset({"rank distance"})
HEADINGS = tuple(heading for _, _, heading in TABLE1)
#: The keys of both grid screens, before their own.
BACK_AND_QUIT = (Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.quit", "Quit"))
#: Rules under the header only: the tables fit 80 columns, in the theme's own colours.
TABLE_STYLE = {"box": box.SIMPLE_HEAD, "header_style": "bold"}


class GridRow(NamedTuple):
    """One line of the grid list, keyed by grid id."""

    key: str
    cells: tuple[str | Text, ...]


def read_grids(store: Store) -> tuple[GridRow, ...]:
    """Every grid, newest first, with how many of its runs have finished."""
    now = time.time()
    rows = []
    for grid in store.list_grids():
        runs = reproduce.grid_runs(store, grid)
        finished = sum(1 for _, run in runs if run and run.status == "finished")
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


def table1(bench: str, figures: dict[str, Any]) -> Table:
    """The paper's Table 1 for one benchmark: a row per sampler, mean ± sd over seeds."""
    title = inert.text(f"{bench}: Table 1 (mean ± sd over seeds)", style="table.title")
    table = Table("sampler", *HEADINGS, title=title, **TABLE_STYLE)
    for label, row in figures["table1"].items():
        table.add_row(inert.text(label), *(figure(row[h]["mean"], h, row[h]["sd"]) for h in HEADINGS))
    return table


def _delta(value: float | None, heading: str) -> Text:
    """A signed delta, green where hybrid is better, red where it is worse."""
    style = ""
    if value:
        style = "green" if (value < 0) == (heading in LOWER_IS_BETTER) else "red"
    return Text(figure(value, heading, signed=True), style=style)


def deltas_table(figures: dict[str, Any]) -> Table:
    """Hybrid's mean minus each other sampler's, per Table 1 column."""
    table = Table(
        "hybrid − other",
        *HEADINGS,
        title="hybrid against each other sampler (rank distance: lower is better)",
        **TABLE_STYLE,
    )
    for name, row in figures["deltas"].items():
        table.add_row(inert.text(name), *(_delta(row[h], h) for h in HEADINGS))
    return table


def runs_table(rep: dict[str, Any]) -> Table:
    """Every run of the grid: its cell (sampler, seed), status, id and wall time."""
    table = Table("sampler", "seed", "status", "run", "wall", **TABLE_STYLE)
    for run in rep["runs"]:
        table.add_row(
            inert.text(run["label"]),
            inert.text(run["seed"]),
            inert.text(run["status"], style=STATUS_STYLES.get(run["status"], "")),
            inert.text(run["run_id"]),
            human_duration(run["wall_s"]) if run["wall_s"] else "",
        )
    return table


def summary(rep: dict[str, Any], done: bool) -> Text:
    """What the grid trains and evaluates, and how far it is (stored text: inert)."""
    opts = rep["options"]
    finished = sum(1 for run in rep["runs"] if run["status"] == "finished")
    return inert.text(
        f"{rep['name']}: {opts['model']} on {' '.join(opts['train'])}, {opts['steps']} steps × batch "
        f"{opts['batch_size']}, seeds {', '.join(map(str, opts['seeds']))}; eval {' '.join(opts['eval'])}. "
        f"{finished}/{len(rep['runs'])} runs finished" + ("." if done else ", refreshing…")
    )


class GridReportScreen(PolledScreen):
    """The report of `hybtui reproduce` for one grid, re-read until every run has ended."""

    BINDINGS = [
        *BACK_AND_QUIT,
        Binding("1", "tab('tab-table1')", "Table 1"),
        Binding("2", "tab('tab-languages')", "Languages"),
        Binding("3", "tab('tab-runs')", "Runs"),
    ]

    def __init__(self, store_path: Path, grid_id: str, refresh_s: float = REPORT_REFRESH_S) -> None:
        super().__init__(store_path, refresh_s)
        self.grid_id = grid_id

    @property
    def heading(self) -> str:
        return f"grid {self.grid_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the grid…", id="grid-summary")
        with TabbedContent(id="grid-tabs"):
            with TabPane("1 Table 1", id="tab-table1"):
                yield VerticalScroll(Static(id="grid-tables"))
            with TabPane("2 Languages", id="tab-languages"):
                yield VerticalScroll(id="grid-languages")
            with TabPane("3 Runs", id="tab-runs"):
                yield VerticalScroll(Static(id="grid-runs"))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tab-table1 VerticalScroll").focus()

    def read(self, store: Store) -> tuple[dict[str, Any], bool]:
        rep = build_report(store, self.grid_id)
        return rep, reproduce.is_done(reproduce.grid_runs(store, store.get_grid(self.grid_id)))

    def show(self, data: tuple[dict[str, Any], bool]) -> None:
        rep, done = data
        if done and self.polling is not None:
            self.polling.stop()
        self.query_one("#grid-summary", Static).update(summary(rep, done))
        self.query_one("#grid-runs", Static).update(runs_table(rep))
        tables: list[Table] = []
        for bench, figures in rep["benchmarks"].items():
            tables.append(table1(bench, figures))
            if figures["deltas"]:
                tables.append(deltas_table(figures))
        self.query_one("#grid-tables", Static).update(
            Group(*tables) if tables else "no results yet: Table 1 fills in as runs finish"
        )
        languages = self.query_one("#grid-languages", VerticalScroll)
        plots = {plot.bench: plot for plot in languages.query(GridBars)}
        for bench, figures in rep["benchmarks"].items():
            if bench not in plots:
                plots[bench] = GridBars(bench, classes="grid-bars")
                languages.mount(plots[bench])
            plots[bench].show(figures["languages"])

    def action_tab(self, pane: str) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = pane
        tabs.active_pane.query_one(VerticalScroll).focus()
