"""SVG snapshots of every screen of the app (pytest-textual-snapshot), over a store with
fixed content (tests/tui_fixtures.py: fixed run ids, a frozen clock, loss curves and
final xquad-r results in all 11 languages), each at 80x24 (the smallest terminal the app
is made for) and 160x48.

The screens are still changing: after an intended change of a screen, regenerate the
baselines in tests/__snapshots__/test_tui_snapshots/ and look at them before committing:

    HF_HUB_OFFLINE=1 python -m pytest tests/test_tui_snapshots.py --snapshot-update

A mismatch fails the test and writes snapshot_report.html (side by side, with a diff
toggle) in the current directory.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time as real_time

import pytest
from textual.widgets import Input, Log, Static
from tui_fixtures import DEMO_NOW, DEMO_RUNS, build_demo_store, wait_until

import hybtui
from hybtui.tui.app import HybtuiApp
from hybtui.tui.screens.compare import CompareScreen
from hybtui.tui.screens.grids import GridReportScreen, GridsScreen, GridsTable
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.widgets.language_table import LanguageTable
from hybtui.tui.widgets.loss_plot import LossPlot
from hybtui.tui.widgets.runs_table import RunsTable

#: The terminal sizes every screen is recorded at.
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
#: Long: the run list is read once at mount; nothing changes in the store meanwhile.
REFRESH_S = 3600.0


class FrozenTime:
    """The ``time`` module with ``time()`` stopped at DEMO_NOW (monotonic clocks untouched)."""

    def time(self) -> float:
        return DEMO_NOW

    def __getattr__(self, name: str):
        return getattr(real_time, name)


def freeze_clock(monkeypatch) -> None:
    """Every hybtui module that reads the wall clock as ``time.time()`` (the run ages, the
    elapsed times, the stall check) sees DEMO_NOW; asyncio and Textual keep real clocks."""
    for info in pkgutil.walk_packages(hybtui.__path__, "hybtui."):
        if info.name.startswith("hybtui.tui."):
            importlib.import_module(info.name)
    frozen = FrozenTime()
    for name, module in list(sys.modules.items()):
        if (name == "hybtui" or name.startswith("hybtui.")) and getattr(module, "time", None) is real_time:
            monkeypatch.setattr(module, "time", frozen)


@pytest.fixture
def demo(tmp_path, monkeypatch, shared_data) -> dict[str, str]:
    """The demo store at ./store (cwd: tmp_path, so the header's store path reads ``store``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))  # the new-run form checks against it
    ids = build_demo_store("store")
    freeze_clock(monkeypatch)
    return ids


@pytest.fixture(params=list(SIZES))
def size(request) -> tuple[int, int]:
    return SIZES[request.param]


def app() -> HybtuiApp:
    return HybtuiApp("store", refresh_s=REFRESH_S)


async def until(pilot, condition, what: str, timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` holds (reads happen in thread workers), then
    until what is scheduled has been drawn, every Input's cursor steady."""
    await wait_until(pilot, condition, what, timeout)
    for screen in pilot.app.screen_stack:  # a focused Input's cursor blinks: a snapshot shows it steady
        for field in screen.query(Input):
            field.cursor_blink = False
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


def runs_loaded(pilot) -> bool:
    tables = pilot.app.screen.query(RunsTable)
    return bool(tables) and tables.first().row_count == len(DEMO_RUNS)


async def open_runs(pilot) -> None:
    await until(pilot, lambda: runs_loaded(pilot), "the run list")


def row_of(name: str) -> int:
    """The run's row in the list (newest first)."""
    return [run[0] for run in reversed(DEMO_RUNS)].index(name)


def test_runs_screen(demo, snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=open_runs)


def test_runs_screen_light_theme(demo, snap_compare, size):
    async def light(pilot):
        pilot.app.theme = "textual-light"
        await open_runs(pilot)

    assert snap_compare(app(), terminal_size=size, run_before=light)


def test_run_detail_of_a_finished_run(demo, snap_compare, size):
    async def detail(pilot):
        await open_runs(pilot)
        await pilot.press(*["down"] * row_of("hybrid-a0.5"), "enter")

        def shown() -> bool:
            screen = pilot.app.screen
            if not (isinstance(screen, RunDetailScreen) and screen.run_id == demo["hybrid-a0.5"]):
                return False
            logs = screen.query(Log)  # the log may sit in a hidden tab: it is read all the same
            return (
                screen.query_one(LanguageTable).row_count == 12  # 11 languages and avg
                and len(screen.query_one(LossPlot).points) == 200
                and all("training done" in "\n".join(log.lines) for log in logs)
            )

        await until(pilot, shown, "the detail of hybrid-a0.5")

    assert snap_compare(app(), terminal_size=size, run_before=detail)


def test_new_run_form(demo, snap_compare, size, monkeypatch):
    monkeypatch.setenv("HYBTUI_GPUS", "0,1")  # the host's GPUs, whatever the machine running the test

    async def form(pilot):
        await open_runs(pilot)
        await pilot.press("n")

        def checked() -> bool:  # the defaults checked against the data (this imports torch)
            screen = pilot.app.screen
            return isinstance(screen, NewRunScreen) and str(
                screen.query_one("#form-message", Static).content
            ).startswith("ready")

        await until(pilot, checked, "the form's check", timeout=120)

    assert snap_compare(app(), terminal_size=size, run_before=form)


def test_compare_two_runs(demo, snap_compare, size):
    async def compare(pilot):
        await open_runs(pilot)
        await pilot.press(*["down"] * row_of("hybrid-a0.5"), "space", "down", "space", "m")

        def shown() -> bool:
            screen = pilot.app.screen
            return (
                isinstance(screen, CompareScreen)
                and len(screen.query("#compare-tables Static")) > 3
                and len(screen.query_one(LossPlot).series) == 2
            )

        await until(pilot, shown, "the comparison", timeout=60)

    assert snap_compare(app(), terminal_size=size, run_before=compare)


async def open_grids(pilot) -> None:
    """From the run list to the grids, once the demo grid is listed."""
    await open_runs(pilot)
    await pilot.press("g")

    def shown() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, GridsScreen) and screen.query_one(GridsTable).row_count == 1

    await until(pilot, shown, "the grid list")


def test_grids_screen(demo, snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=open_grids)


def test_grid_report_screen(demo, snap_compare, size):
    async def report(pilot):
        await open_grids(pilot)
        await pilot.press("enter")

        def shown() -> bool:
            screen = pilot.app.screen
            return isinstance(screen, GridReportScreen) and "2/3 runs finished." in str(
                screen.query_one("#grid-summary", Static).content
            )

        await until(pilot, shown, "the grid's report")

    assert snap_compare(app(), terminal_size=size, run_before=report)
