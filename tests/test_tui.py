"""Pilot tests of the app against a real store: the run list, its live refresh, the
filter, cancel/resume through the launcher, the detail screen, the new-run form (with a
real worker process) and the comparison of marked runs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal

import pytest
from rich.console import Console
from textual.widgets import Button, Input, Log, Select, SelectionList, Static

from hybtui import models
from hybtui.config import RunConfig
from hybtui.store import Store
from hybtui.tui.app import HybtuiApp
from hybtui.tui.screens.compare import CompareScreen
from hybtui.tui.screens.new_run import NewRunScreen, join_spec, split_spec
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.snapshot import downsample, human_duration, language_rows, train_languages
from hybtui.tui.widgets.language_table import LanguageTable
from hybtui.tui.widgets.loss_plot import LossPlot
from hybtui.tui.widgets.runs_table import RunsTable

REFRESH_S = 0.1


def result_rows(shift: float = 0.0) -> list[dict]:
    """Final xquad-r results of a run trained on en,de: per language and macro-averages
    (every mAP moved by ``shift``)."""
    rows = []
    for setting, base in (("mono", 0.8 + shift), ("cross", 0.6 + shift), ("multi", 0.5 + shift)):
        for i, lang in enumerate(("de", "en", "th")):
            rows.append({"bench": "xquad-r", "setting": setting, "query_lang": lang,
                         "doc_lang": lang if setting == "mono" else ("en" if setting == "cross" else "all"),
                         "metric": "map", "value": base - 0.1 * i,
                         "seen": "unseen" if lang == "th" else "seen"})
        rows.append({"bench": "xquad-r", "setting": setting, "query_lang": "avg", "doc_lang": "avg",
                     "metric": "map", "value": base - 0.1, "seen": None})
    rows.append({"bench": "xquad-r", "setting": "multi", "query_lang": "avg", "doc_lang": "avg",
                 "metric": "rank_distance", "value": 12.5, "seen": None})
    return rows


def finished_run(store: Store, config: RunConfig, name: str, shift: float = 0.0) -> str:
    """A finished run with a loss curve, final results and a worker log, as a worker leaves it."""
    done = store.create_run(config, name=name)
    store.set_status(done, "running")
    store.add_metrics(done, [("loss", step, 2.0 / step + shift) for step in range(1, 11)])
    store.heartbeat(done, step=10)
    store.add_results(done, result_rows(shift), step=10, final=True)
    store.set_status(done, "finished")
    (store.run_dir(done) / "worker.log").write_text("step 10 loss 0.2\ntraining done\n")
    return done


@pytest.fixture
def store(tmp_path):
    """A store with a finished run and a queued one."""
    with Store(tmp_path / "store") as store:
        finished_run(store, RunConfig(model="tiny", train=("mlqa-r:en,de",), steps=10), "finished-run")
        store.create_run(RunConfig(model="tiny", sampler="mono", train=("mlqa-r:en,de",), steps=10),
                         name="queued-run")
        yield store


def run(coro_fn):
    """pytest-asyncio is not installed: drive each Pilot test with asyncio.run."""
    asyncio.run(coro_fn())


def cell(table: RunsTable, run_id: str, column: str) -> str:
    return str(table.get_cell(run_id, column))


def by_name(store: Store, name: str) -> str:
    return next(r["id"] for r in store.list_runs() if r["name"] == name)


def test_runs_table_shows_runs_newest_first_with_headline_figures(store):
    done, queued = by_name(store, "finished-run"), by_name(store, "queued-run")

    async def scenario():
        app = HybtuiApp(store.path, refresh_s=REFRESH_S)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            table = app.screen.query_one(RunsTable)
            assert [row.key.value for row in table.ordered_rows] == [queued, done]
            assert cell(table, done, "status") == "finished"
            assert cell(table, done, "train") == "en,de"
            assert [cell(table, done, c) for c in ("mono", "cross", "multi", "rank_distance")] == \
                ["0.700", "0.500", "0.400", "12.50"]
            assert cell(table, queued, "status") == "queued"
            assert cell(table, queued, "mono") == ""

    run(scenario)


def test_enter_opens_detail_with_loss_plot_languages_and_log(store):
    done = by_name(store, "finished-run")

    async def scenario():
        app = HybtuiApp(store.path, refresh_s=REFRESH_S)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            await pilot.press("down", "enter")
            await pilot.pause(0.3)
            screen = app.screen
            assert isinstance(screen, RunDetailScreen) and screen.run_id == done
            assert len(screen.query_one(LossPlot).points) == 10
            languages = screen.query_one(LanguageTable)
            rows = [[str(c) for c in languages.get_row_at(i)] for i in range(languages.row_count)]
            assert rows[0] == ["de", "seen", "0.800", "0.600", "0.500"]
            assert rows[2][:2] == ["th", "unseen"]
            assert rows[-1][0] == "avg"
            assert "training done" in "\n".join(screen.query_one(Log).lines)
            await pilot.press("escape")
            assert isinstance(app.screen.query_one(RunsTable), RunsTable)

    run(scenario)


def test_filter_hides_non_matching_runs_and_q_types_into_it(store):
    done = by_name(store, "finished-run")

    async def scenario():
        app = HybtuiApp(store.path, refresh_s=REFRESH_S)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            await pilot.press("slash", *"finished")
            await pilot.pause(0.3)  # a refresh meanwhile keeps the filter
            table = app.screen.query_one(RunsTable)
            assert [row.key.value for row in table.ordered_rows] == [done]
            await pilot.press("enter")
            assert table.has_focus
            await pilot.press("slash", *"q")
            assert app.is_running and app.screen.query_one(Input).value == "finishedq"
            assert table.row_count == 0

    run(scenario)


def test_live_refresh_shows_new_steps_and_keeps_the_cursor(store):
    async def scenario():
        app = HybtuiApp(store.path, refresh_s=REFRESH_S)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            table = app.screen.query_one(RunsTable)
            await pilot.press("down")
            highlighted = table.highlighted_run
            live = store.create_run(RunConfig(model="tiny", steps=100), name="live-run", status="running")
            store.add_metrics(live, [("loss", 40, 1.5)])
            store.heartbeat(live, step=40)
            await pilot.pause(0.4)
            assert table.row_count == 3
            assert cell(table, live, "status") == "running 40/100"
            assert table.highlighted_run == highlighted
            table.move_cursor(row=table.get_row_index(live))
            await pilot.press("enter")
            await pilot.pause(0.3)
            plot = app.screen.query_one(LossPlot)
            assert plot.points == [(40, 1.5)]
            store.add_metrics(live, [("loss", 41, 1.4)])
            await pilot.pause(0.8)
            assert plot.points == [(40, 1.5), (41, 1.4)]

    run(scenario)


def test_cancel_and_resume_go_through_the_launcher(store):
    queued = by_name(store, "queued-run")

    async def scenario():
        app = HybtuiApp(store.path, refresh_s=REFRESH_S)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            await pilot.press("c")  # the cursor starts on the newest run: the queued one
            await pilot.pause(0.4)
            assert store.get_run(queued)["status"] == "cancelled"
            assert cell(app.screen.query_one(RunsTable), queued, "status") == "cancelled"
            await pilot.press("down", "r")  # a finished run cannot be resumed
            await pilot.pause(0.3)
            errors = [n for n in app._notifications if n.severity == "error"]
            assert errors and "only crashed or cancelled runs can be resumed" in errors[0].message

    run(scenario)


def test_formatting_helpers():
    assert human_duration(45) == "45s" and human_duration(185) == "3m05s"
    assert human_duration(7800) == "2h10m" and human_duration(4 * 86400 + 3 * 3600) == "4d03h"
    assert train_languages({"train": ["mlqa-r:en,de", "xquad-r"]}) == "en,de all"
    xs, ys = downsample([(step, float(step)) for step in range(1, 101)], 10)
    assert len(xs) == 10 and xs[0] == 5.5 and ys[-1] == 95.5
    assert language_rows([], "xquad-r") == []


async def wait_for(pilot, condition, timeout: float, step: float = 0.2) -> None:
    """Pause until ``condition()`` holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / step)):
        if condition():
            return
        await pilot.pause(step)
    assert condition(), f"still not true after {timeout}s on {pilot.app.screen!r}"


def fill_new_run(screen: NewRunScreen, train: list[str], **inputs: str) -> None:
    """The test's run: tiny, trained on mlqa-r ``train``, evaluated on xquad-r en."""
    screen.query_one("#model", Select).value = "tiny"
    for kind, langs in (("train", train), ("eval", ["en"])):
        languages = screen.query_one(f"#{kind}-langs", SelectionList)
        languages.deselect_all()
        for lang in langs:
            languages.select(lang)
    for field, value in inputs.items():
        screen.query_one(f"#{field}", Input).value = value


def test_new_run_form_launches_a_worker_and_opens_its_detail(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    models.prepare_tiny()  # so the worker starts at once
    path = tmp_path / "store"

    async def scenario():
        app = HybtuiApp(path, refresh_s=REFRESH_S)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            await pilot.press("n")
            screen = app.screen
            assert isinstance(screen, NewRunScreen)
            assert screen.query_one("#lr", Input).value == "3e-05"  # the paper's defaults
            fill_new_run(screen, ["en", "de"], steps="3", batch_size="8", max_length="32")
            launch = screen.query_one("#launch", Button)
            message = screen.query_one("#form-message", Static)
            # Wait for the check of the filled form (the defaults were checked, and ready, before).
            await wait_for(pilot, lambda: "3 steps" in str(message.content) and not launch.disabled, 60)
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen), 30)
            detail = app.screen
            with Store(path) as store:
                run = store.get_run(detail.run_id)
                assert run["status"] in ("queued", "running")
                assert run["config"]["train"] == ["mlqa-r:de,en"] and run["config"]["eval"] == ["xquad-r:en"]
                assert run["config"]["data_dir"] == str(shared_data.resolve())
                await wait_for(pilot, lambda: store.get_run(detail.run_id)["status"] not in ("queued", "running"),
                               120, step=0.5)
                assert store.get_run(detail.run_id)["status"] == "finished", store.get_run(detail.run_id)["error"]
            await wait_for(pilot, lambda: len(detail.query_one(LossPlot).points) == 3, 5)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen.query_one(RunsTable).row_count == 1, 5)

    try:
        run(scenario)
    finally:  # a failed test must not leave its real worker training
        if (path / "hybtui.db").exists():
            with Store(path) as store:
                for r in store.list_runs(status="running"):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(r["pgid"] or r["pid"], signal.SIGKILL)


def test_new_run_form_refuses_invalid_input_and_records_nothing(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    path = tmp_path / "store"

    async def scenario():
        app = HybtuiApp(path, refresh_s=REFRESH_S)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            await pilot.press("n")
            screen = app.screen
            message = screen.query_one("#form-message", Static)
            fill_new_run(screen, ["en", "de"], alpha="1.5")
            await wait_for(pilot, lambda: "--alpha must be within [0, 1]" in str(message.content), 10)
            assert screen.query_one("#launch", Button).disabled
            await pilot.press("ctrl+s")
            assert any(n.title == "cannot launch" for n in app._notifications)
            screen.query_one("#alpha", Input).value = "0.5"
            screen.query_one("#sampler", Select).value = "cross"
            fill_new_run(screen, ["en"])
            await wait_for(pilot, lambda: "has the single language en" in str(message.content), 60)
            assert message.has_class("error") and screen.query_one("#launch", Button).disabled
            await pilot.press("ctrl+s", "escape")
            assert not isinstance(app.screen, NewRunScreen)
        with Store(path) as store:
            assert store.list_runs() == []

    run(scenario)


def text_of(renderable) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(renderable)
    return console.file.getvalue()


def test_compare_marked_runs_shows_differences_figures_and_curves(store):
    hybrid = by_name(store, "finished-run")
    mono = finished_run(store, RunConfig(model="tiny", sampler="mono", train=("mlqa-r:en,de",), steps=10),
                        "mono-run", shift=0.05)

    async def scenario():
        app = HybtuiApp(store.path, refresh_s=REFRESH_S)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.3)
            table = app.screen.query_one(RunsTable)
            await pilot.press("space", "m")  # one run is not a comparison
            assert any(n.title == "compare" for n in app._notifications)
            await pilot.press("down", "space", "space", "down", "space")  # marks and unmarks the queued run
            assert table.marked == [mono, hybrid]
            assert str(table.get_cell(mono, "id")).startswith("▶")
            await pilot.press("m")
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            await wait_for(pilot, lambda: len(screen.query("#compare-tables Static")) > 3, 20)
            text = "\n".join(text_of(s.content) for s in screen.query("#compare-tables Static"))
            cells = [re.findall(r"[^\s│┃|]+", line) for line in text.splitlines()]
            assert [row for row in cells if row[:1] == ["sampler"]] == [["sampler", "mono", "hybrid"]]
            assert mono in text and hybrid in text
            assert "0.750" in text and "0.700" in text  # mono mAP of each run
            assert "-0.050" in text or "−0.050" in text  # the delta against the first marked run
            curves = screen.query_one(LossPlot).series
            assert len(curves) == 2 and all(len(points) == 10 for points in curves.values())
            await pilot.press("escape")
            assert app.screen.query_one(RunsTable) is table

    run(scenario)


def test_spec_spelling_matches_the_cli():
    assert split_spec("mlqa-r") == ("mlqa-r", ("ar", "de", "en", "es", "hi", "vi", "zh"))
    assert split_spec("xquad-r:en,de") == ("xquad-r", ("en", "de"))
    assert join_spec("mlqa-r", ["en", "de"]) == "mlqa-r:de,en"
    assert join_spec("mlqa-r", list(split_spec("mlqa-r")[1])) == "mlqa-r"
