"""Pilot tests of the app against a real store: the run list, its live refresh, the
filter, cancel/resume through the launcher, and the detail screen."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Input, Log

from hybtui.config import RunConfig
from hybtui.store import Store
from hybtui.tui.app import HybtuiApp
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.snapshot import downsample, human_duration, language_rows, train_languages
from hybtui.tui.widgets.language_table import LanguageTable
from hybtui.tui.widgets.loss_plot import LossPlot
from hybtui.tui.widgets.runs_table import RunsTable

REFRESH_S = 0.1


def result_rows() -> list[dict]:
    """Final xquad-r results of a run trained on en,de: per language and macro-averages."""
    rows = []
    for setting, base in (("mono", 0.8), ("cross", 0.6), ("multi", 0.5)):
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


@pytest.fixture
def store(tmp_path):
    """A store with a finished run (loss curve, final results, a worker log) and a queued one."""
    with Store(tmp_path / "store") as store:
        done = store.create_run(RunConfig(model="tiny", train=("mlqa-r:en,de",), steps=10), name="finished-run")
        store.set_status(done, "running")
        store.add_metrics(done, [("loss", step, 2.0 / step) for step in range(1, 11)])
        store.heartbeat(done, step=10)
        store.add_results(done, result_rows(), step=10, final=True)
        store.set_status(done, "finished")
        (store.run_dir(done) / "worker.log").write_text("step 10 loss 0.2\ntraining done\n")
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
