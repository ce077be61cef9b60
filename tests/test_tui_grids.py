"""A grid's report in the app (every table of report.md, live, its runs openable) and who
writes report.md: the grid's last worker, the app that sees the grid end, the CLI; always
whole, however many write at once."""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
from pathlib import Path

import pytest
from rich.console import Console
from test_runs import hybtui, store_dir, wait_for  # noqa: F401 - fixture
from test_tui import hold_the_slot
from test_tui_snapshots import app, demo, open_runs, size, until  # noqa: F401 - fixtures
from textual.widgets import Static
from tui_fixtures import DEMO_GRID, build_demo_store, drive, record_grid, wait_until

from hybtui.cli.grids import report_after_run
from hybtui.formatting import figure
from hybtui.reporting import grid_report
from hybtui.runs.store import Store
from hybtui.tui.screens import grids as grids_screen
from hybtui.tui.screens.grids import TABS, GridReportScreen, GridRunsTable, GridsScreen, GridsTable
from hybtui.tui.screens.run_detail import RunDetailScreen

#: Which tab shows a table of report.md, by the words its caption starts with (Table 1 has none).
TAB_OF_CAPTION = {"mAP by whether": "grid-seen", "Per query language": "grid-languages"}


def text_of(renderable) -> str:
    console = Console(width=220, file=io.StringIO())
    console.print(renderable)
    return console.file.getvalue()


def markdown_tables(markdown: str) -> list[tuple[str, list[list[str]]]]:
    """(the caption above it, its rows as cells) for every table of a report.md."""
    lines = markdown.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            caption = next((t for t in reversed(lines[: i - 1]) if t and not t.startswith("|")), "")
            rows = []
            for row in lines[i + 1 :]:
                if not row.startswith("| "):
                    break
                rows.append([cell.strip() for cell in row.strip("|").split(" | ")])
            tables.append((caption, rows))
    return tables


def in_order(cells: list[str], line: str) -> bool:
    """Whether every figure is in ``line``, left to right (the app leaves out a column that
    report.md fills with – for every sampler)."""
    at = 0
    for cell in cells:
        at = line.find(cell, at)
        if at < 0:
            return False
        at += len(cell)
    return True


def end_all(store: Store, cells: list[dict], status: str = "finished") -> None:
    """Every run of the grid that is still there ends."""
    for cell in cells:
        if store.db.table("runs").count_where("id = ?", [cell["run_id"]]):
            store.set_status(cell["run_id"], "running")
            store.set_status(cell["run_id"], status)


def report_files(store: Store, grid_id: str) -> tuple[dict | None, str | None]:
    directory = store.path / "grids" / grid_id
    if not (directory / "report.json").exists():
        return None, None
    return json.loads((directory / "report.json").read_text()), (directory / "report.md").read_text()


async def open_report(pilot, grid_id: str) -> GridReportScreen:
    await pilot.press("g")
    grids = pilot.app.screen.query_one(GridsTable)
    await wait_until(pilot, lambda: grids.row_count >= 1, "the grid listed", 5)
    grids.move_cursor(row=grids.get_row_index(grid_id))
    await pilot.press("enter")
    report = pilot.app.screen
    assert isinstance(report, GridReportScreen) and report.grid_id == grid_id
    return report


def test_every_table_of_report_md_is_in_the_app_and_the_app_writes_it(tmp_path):
    ids = build_demo_store(tmp_path / "store")
    grid_id = ids[DEMO_GRID]
    assert not (tmp_path / "store" / "grids" / grid_id).exists()

    async def scenario(app, pilot):
        report = await open_report(pilot, grid_id)
        summary = report.query_one("#grid-summary", Static)
        await wait_until(pilot, lambda: "Report: grids/" in str(summary.content), "the ended grid's report", 5)
        with Store(tmp_path / "store") as store:
            rep, markdown = report_files(store, grid_id)
        tables = markdown_tables(markdown)
        assert len(tables) == 4  # Table 1, deltas, seen / unseen, per language
        for caption, rows in tables:
            tab = next((t for words, t in TAB_OF_CAPTION.items() if caption.startswith(words)), "grid-tables")
            shown = text_of(report.query_one(f"#{tab}", Static).content).splitlines()
            for first, *cells in rows:
                line = next((s for s in shown if s.split() and s.split()[0] == first.split()[0] and first in s), "")
                assert line and in_order([c for c in cells if c != figure(None, "map")], line), (
                    tab,
                    first,
                    cells,
                    shown,
                )
        runs = report.query_one(GridRunsTable)
        shown_runs = [(str(runs.get_row_at(i)[3]), str(runs.get_row_at(i)[2])) for i in range(runs.row_count)]
        assert shown_runs == [(r["run_id"], r["status"]) for r in rep["runs"]]
        assert sorted(status for _, status in shown_runs) == ["crashed", "finished", "finished"]

    drive(tmp_path / "store", scenario, size=(160, 48))


def test_the_report_screen_opens_its_runs_follows_the_grid_and_writes_report_md_when_it_ends(tmp_path):
    store = Store(tmp_path / "store")
    hold_the_slot(store)
    grid_id, cells = record_grid(store, per_language=True)

    async def scenario(app, pilot):
        report = await open_report(pilot, grid_id)
        runs = report.query_one(GridRunsTable)
        await wait_until(pilot, lambda: runs.row_count == 5, "the grid's runs", 5)
        await pilot.press("4")
        assert runs.has_focus and report.query_one("TabbedContent").active == "tab-runs"
        await pilot.press("down", "down", "enter")  # the deleted one
        await wait_until(pilot, lambda: any("deleted" in n.message for n in app._notifications), "the warning", 5)
        assert app.screen is report
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), "the run's page", 5)
        assert app.screen.run_id == cells[3]["run_id"]
        await pilot.press("escape")
        assert app.screen is report and runs.highlighted_key == cells[3]["run_id"]
        assert "no seen / unseen" in str(report.query_one("#grid-seen", Static).content)
        assert report_files(store, grid_id) == (None, None)  # not ended: nothing written
        end_all(store, cells)
        summary = report.query_one("#grid-summary", Static)
        await wait_until(pilot, lambda: "Report: grids/" in str(summary.content), "the report written", 5)
        rep, markdown = report_files(store, grid_id)
        assert [r["status"] for r in rep["runs"]] == ["finished"] * 2 + ["deleted"] + ["finished"] * 2
        assert markdown == grid_report.to_markdown(rep) and "Not finished: X-X-mono seed 2: deleted." in markdown

    try:
        drive(store.path, scenario, refresh_s=0.2)
    finally:
        store.close()


def test_the_grid_list_rewrites_a_report_written_before_the_grid_ended(tmp_path):
    store = Store(tmp_path / "store")
    hold_the_slot(store)
    grid_id, cells = record_grid(store, per_language=True)
    grid_report.write_report(store, grid_id)  # `hybtui grids report` mid-grid
    assert "X-X-mono seed 1: queued" in report_files(store, grid_id)[1]

    async def scenario(app, pilot):
        await pilot.press("g")
        assert isinstance(app.screen, GridsScreen)
        end_all(store, cells, "failed")
        await wait_until(pilot, lambda: "queued" not in (report_files(store, grid_id)[1] or ""), "a new report", 5)
        assert "X-X-mono seed 1: failed" in report_files(store, grid_id)[1]

    try:
        drive(store.path, scenario, refresh_s=0.2)
    finally:
        store.close()


def test_the_worker_of_the_last_run_to_end_writes_the_report(tmp_path, monkeypatch):
    with Store(tmp_path / "store") as store:
        hold_the_slot(store)
        grid_id, cells = record_grid(store, per_language=True)
        end_all(store, cells[:-1])
        report_after_run(store.path, cells[0]["run_id"])  # one run still queued: not the end
        assert report_files(store, grid_id) == (None, None)
        end_all(store, cells[-1:])
        monkeypatch.setenv("RANK", "1")  # a torchrun group's other rank records nothing
        report_after_run(store.path, cells[-1]["run_id"])
        assert report_files(store, grid_id) == (None, None)
        monkeypatch.setenv("RANK", "0")
        report_after_run(store.path, cells[-1]["run_id"])
        rep, markdown = report_files(store, grid_id)
        assert rep == grid_report.build_report(store, grid_id) and markdown == grid_report.to_markdown(rep)


def write_again(path: Path, grid_id: str) -> None:
    """One writer: the report written over and over (a forked process: no start-up to wait for)."""
    with Store(path) as store:
        for _ in range(20):
            grid_report.write_report(store, grid_id)


def test_writers_at_once_never_leave_a_torn_or_stray_file(tmp_path):
    with Store(tmp_path / "store") as store:
        hold_the_slot(store)
        grid_id, cells = record_grid(store, per_language=True)
        end_all(store, cells)
        rep, directory = grid_report.write_report(store, grid_id)
    whole = {"report.md": grid_report.to_markdown(rep), "report.json": json.dumps(rep, indent=1) + "\n"}
    fork = multiprocessing.get_context("fork")
    writers = [fork.Process(target=write_again, args=(tmp_path / "store", grid_id)) for _ in range(3)]
    for writer in writers:
        writer.start()
    reads = 0
    while any(w.is_alive() for w in writers) or not reads:
        for name, text in whole.items():
            assert (directory / name).read_text() == text  # a reader sees one writer's whole file
            reads += 1
    for writer in writers:
        writer.join()
    assert [w.exitcode for w in writers] == [0, 0, 0]
    assert sorted(p.name for p in directory.iterdir()) == ["report.json", "report.md"]


@pytest.mark.slow
def test_a_detached_grid_gets_its_report_from_its_last_worker(store_dir):  # noqa: F811
    args = ("--quick", "--model", "tiny", "--steps", "2", "--batch-size", "8", "--eval", "xquad-r:en,ru")
    grid_id = json.loads(hybtui("reproduce", *args, "--max-parallel", "2", "--detach", "--json").stdout)["grid"]
    report = store_dir / "grids" / grid_id / "report.md"
    wait_for(report.exists, 240, "the report written with no app or CLI watching")
    logs = [log.read_text() for log in (store_dir / "runs").glob("*/worker.log")]
    assert sum("grid report written to" in log for log in logs) >= 1  # by a worker: none else was running
    with Store(store_dir) as store:
        rep = json.loads(report.with_name("report.json").read_text())
        assert [r["status"] for r in rep["runs"]] == ["finished"] * 4
        assert report.read_text() == grid_report.to_markdown(grid_report.build_report(store, grid_id))


@pytest.mark.parametrize("tab", [pane for pane, *_ in TABS[1:]])  # Table 1: test_tui_snapshots.py
def test_grid_report_tab(demo, snap_compare, size, tab):  # noqa: F811
    async def shown(pilot):
        await open_runs(pilot)
        report = await open_report(pilot, demo[DEMO_GRID])
        summary = report.query_one("#grid-summary", Static)
        await until(pilot, lambda: "Report: grids/" in str(summary.content), "the grid's report")
        await pilot.press(next(key for pane, key, *_ in TABS if pane == tab))
        await until(pilot, lambda: report.query_one("TabbedContent").active == tab, "the tab")

    assert snap_compare(app(), terminal_size=size, run_before=shown)


def test_a_store_that_refuses_the_report_still_shows_the_grid_and_says_why(tmp_path, monkeypatch):
    def refuse(*_args) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(grids_screen, "write_if_ended", refuse)
    monkeypatch.setattr(grids_screen, "publish", refuse)
    with Store(tmp_path / "store") as store:
        hold_the_slot(store)
        grid_id, cells = record_grid(store, per_language=True)
        end_all(store, cells)

    async def scenario(app, pilot):
        report = await open_report(pilot, grid_id)
        summary = report.query_one("#grid-summary", Static)
        await wait_until(pilot, lambda: "not written" in str(summary.content), "why the report is not written", 5)
        assert "Read-only file system" in str(summary.content)
        assert "zero-shot" in text_of(report.query_one("#grid-tables", Static).content)

    drive(tmp_path / "store", scenario)
    assert not (tmp_path / "store" / "grids").exists()
