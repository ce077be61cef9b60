"""A run's page: the evaluations over steps, the log with the store's events, the files, the
header's truths (device, zero-shot, α, step, ETA with evaluations), the run list's actions;
its view model (tui/run_page.py) without a terminal; and SVG snapshots at 80x24 and 160x48."""

from __future__ import annotations

import time
from types import SimpleNamespace
from unittest import mock

import pytest
from test_tui import finished_run, hold_the_slot, result_rows
from test_tui_snapshots import SIZES, app, freeze_clock, until
from textual.widgets import Log, Static, TabbedContent
from tui_fixtures import DEMO_NOW, build_demo_store, demo_results, drive, settle, wait_until

from hybtui.config import RunConfig
from hybtui.runs.store import Store
from hybtui.tui.run_page import (
    Progress,
    ReadState,
    ema,
    eta,
    eval_curves,
    eval_languages,
    evaluations_left,
    merge_log,
    read_detail,
)
from hybtui.tui.screens.confirm import ConfirmScreen
from hybtui.tui.screens.run_detail import TABS, RunDetailScreen
from hybtui.tui.screens.runs import RunsScreen
from hybtui.tui.widgets.eval_plot import EvalPlot
from hybtui.tui.widgets.loss_plot import LossPlot
from hybtui.tui.widgets.runs_table import RunsTable

# -- the view model --------------------------------------------------------------------


def event(t: float, message: str, level: str = "info") -> dict:
    return {"id": 0, "time": t, "level": level, "message": message}


def test_merge_log_puts_events_among_log_lines_by_time_and_keeps_tracebacks_whole(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    log = (
        "2026-01-06 12:00:01,000 INFO loading data\n"
        "2026-01-06 12:00:05,000 ERROR failed at step 3:\nTraceback (most recent call last):\n  boom\n"
    )
    merged = merge_log([event(DEMO_NOW + 3, "device cpu"), event(DEMO_NOW + 9, "running → failed")], log)
    assert merged.splitlines() == [
        "2026-01-06 12:00:01,000 INFO loading data",
        "2026-01-06 12:00:03 event INFO device cpu",
        "2026-01-06 12:00:05,000 ERROR failed at step 3:",
        "Traceback (most recent call last):",
        "  boom",
        "2026-01-06 12:00:09 event INFO running → failed",
    ]
    assert merge_log([], "") == ""


def test_progress_reads_the_device_and_measures_periodic_evaluations():
    progress = Progress()
    progress.add([event(0, "device cuda:0"), event(10, "step 10: periodic evaluation")])
    assert progress.device == "cuda:0" and progress.evaluating == (10, False, 10) and progress.eval_s is None
    progress.add([event(16, "step 10: periodic evaluation done"), event(30, "step 20: periodic evaluation")])
    progress.add([event(40, "step 20: periodic evaluation done"), event(50, "step 30: final evaluation")])
    assert progress.eval_s == 8.0 and progress.evaluating == (30, True, 50)
    progress.add([event(52, "step 30: final evaluation: xquad-r candidates 50%")])
    assert progress.evaluated == "xquad-r candidates 50%"
    progress.add([event(60, "step 30: final evaluation done")])
    assert progress.evaluated is None and progress.evaluating is None


def test_eta_counts_the_evaluations_still_to_come():
    run = SimpleNamespace(status="running", total_steps=100, started_at=0.0)
    assert evaluations_left(run, 10, 35) == 6  # 40 … 90; the one at 100 is the final one
    assert evaluations_left(run, None, 35) == 0
    samples = [(10, 10.0), (20, 20.0)]  # one second a step
    assert eta(run, samples, 20) == 80.0
    assert eta(run, samples, 20, evaluation_s=6 * 8.0) == 128.0


def test_ema_is_bias_corrected_and_continues_across_reads():
    first, state = ema([2.0, 2.0], (0.0, 0))
    assert first == pytest.approx([2.0, 2.0])  # not pulled towards 0
    whole, _ = ema([2.0, 2.0, 1.0, 1.0], (0.0, 0))
    rest, _ = ema([1.0, 1.0], state)
    assert rest == pytest.approx(whole[2:])


def periodic(shift: float) -> list[dict]:
    return [{**row, "value": row["value"] + shift} for row in result_rows()]


def test_eval_curves_have_each_evaluated_step_then_the_final_one():
    results = [
        *({**r, "step": 5, "final": False} for r in periodic(-0.2)),
        *({**r, "step": 10, "final": True} for r in periodic(0.0)),
    ]
    curves = eval_curves(results)
    assert curves["mono mAP"] == [(5, pytest.approx(0.5)), (10, pytest.approx(0.7))]
    assert curves["multi rank dist."] == [(5, pytest.approx(12.3)), (10, pytest.approx(12.5))]
    assert eval_languages(results) == ["avg", "de", "en", "th"]
    assert eval_curves(results, "th")["mono mAP"] == [(5, pytest.approx(0.4)), (10, pytest.approx(0.6))]
    assert eval_curves([]) == {"mono mAP": [], "cross mAP": [], "multi mAP": [], "multi rank dist.": []}


# -- the page under Pilot ----------------------------------------------------------------


def evaluated_run(store: Store) -> str:
    """A finished hybrid run of 10 steps that evaluated at step 5 and at its end, on cpu."""
    run_id = finished_run(store, RunConfig(model="tiny", train=("mlqa-r:en,de",), steps=10, eval_every=5), "evals")
    store.add_results(run_id, periodic(-0.2), step=5, final=False)
    store.add_metrics(run_id, [("validation_loss", 5, 1.5), ("lr", 5, 3e-5)])
    store.add_event(run_id, "info", "device cpu")
    return run_id


def open_page(app, run_id: str):
    screen = RunDetailScreen(app.store_path, run_id, 3600.0)
    app.push_screen(screen)
    return screen


def test_page_shows_evaluations_over_steps_the_log_with_events_and_files(tmp_path):
    with Store(tmp_path / "store") as store:
        run_id = evaluated_run(store)

    async def scenario(app, pilot):
        screen = open_page(app, run_id)
        await wait_until(pilot, lambda: screen.run is not None and screen.query_one(EvalPlot).series, "the read")
        await settle(pilot)
        status = str(screen.query_one("#run-status", Static).render())
        assert "hybrid α=0.5 · cpu ·" in status
        plot = screen.query_one(EvalPlot)
        assert plot.series["mono mAP"].steps.tolist() == [5, 10]
        assert plot.series["multi rank dist."].side == "right"
        assert set(screen.query_one(LossPlot).series) == {"", "smoothed", "validation", "lr"}
        await pilot.press("s")
        assert "smoothed" not in screen.query_one(LossPlot).series
        await pilot.press("l")  # the first query language
        assert plot.lang == "de" and screen.query_one(TabbedContent).active == "evaluations-tab"
        assert plot.series["mono mAP"].values.tolist() == pytest.approx([0.6, 0.8])
        log = "\n".join(screen.query_one(Log).lines)
        assert "training done" in log and "event INFO device cpu" in log and "→ finished" in log
        await pilot.press("6")
        files = str(screen.query_one("#files", Static).render())
        assert str(tmp_path / "store" / "runs" / run_id / "worker.log") in files
        await pilot.press("y")
        assert app.clipboard == run_id
        await pilot.press("p")
        assert app.clipboard == str(tmp_path / "store" / "runs" / run_id)

    drive(tmp_path / "store", scenario, size=(80, 24))


def test_header_of_zero_shot_mono_and_running_runs(tmp_path):
    with Store(tmp_path / "store") as store:
        zero = finished_run(store, RunConfig(model="tiny", steps=0), "zero")
        store.db.table("metrics").delete_where("run_id = ?", [zero])
        mono = store.create_run(RunConfig(model="tiny", sampler="mono", steps=100), name="mono", status="running")
        store.add_metrics(mono, [("loss", step, 1.0) for step in range(1, 28)])
        store.heartbeat(mono, step=20)  # the heartbeat lags behind the stored steps

    async def scenario(app, pilot):
        screen = open_page(app, zero)
        await wait_until(pilot, lambda: screen.run is not None, "the zero-shot run read")
        await settle(pilot)
        status = str(screen.query_one("#run-status", Static).render())
        assert "zero-shot" in status and "α" not in status
        assert screen.query_one(LossPlot).heading() == "zero-shot: evaluated without training (no loss)"
        await pilot.press("escape")
        await settle(pilot)
        screen = open_page(app, mono)
        await wait_until(pilot, lambda: screen.is_mounted, "the page mounted")
        # The first read shows every stored step at once (no refresh period waited: it is 1 h).
        await wait_until(pilot, lambda: len(screen.query_one(LossPlot).points) == 27, "the stored steps")
        status = str(screen.query_one("#run-status", Static).render())
        assert "running 27/100" in status and "mono ·" in status and "α" not in status

    drive(tmp_path / "store", scenario)


def test_page_cancels_resumes_and_deletes_its_run_then_returns_to_the_list(tmp_path):
    with Store(tmp_path / "store") as store:
        hold_the_slot(store)
        queued = store.create_run(RunConfig(model="tiny", steps=10), name="waiting")

    async def scenario(app, pilot):
        screen = open_page(app, queued)
        await wait_until(pilot, lambda: screen.run is not None, "the run read")
        await pilot.press("c")
        await wait_until(pilot, lambda: screen.run.status == "cancelled", "the run cancelled")
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.run.status == "queued", "the run queued again")
        await pilot.press("c")
        await wait_until(pilot, lambda: screen.run.status == "cancelled", "the run cancelled again")
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert "waiting" in str(app.screen.query_one("#confirm-detail", Static).render())
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), "back to the list")
        with Store(tmp_path / "store") as store:
            assert queued not in {run.id for run in store.list_runs()}

    drive(tmp_path / "store", scenario)


def test_read_detail_is_incremental(tmp_path):
    with Store(tmp_path / "store") as store:
        run_id = evaluated_run(store)
        first = read_detail(store, run_id, ReadState())
        assert [e["message"] for e in first.events][-1] == "device cpu"
        assert {r["step"] for r in first.results} == {5, 10} and len(first.final_results) == len(result_rows())
        store.add_event(run_id, "info", "later")
        state = ReadState(first.last_id, first.log_end, first.events_last_id, 0, False)
        second = read_detail(store, run_id, state)
        assert [e["message"] for e in second.events] == ["later"]
        assert second.results is None and second.log_text == "" and not any(second.series.values())


# -- snapshots ---------------------------------------------------------------------------


@pytest.fixture
def evaluated_demo(tmp_path, monkeypatch, shared_data) -> dict[str, str]:
    """The demo store, built with the clock frozen (its events read DEMO_NOW) in UTC, with
    periodic evaluations of hybrid-a0.5 every 250 steps, its device, and a zero-shot run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    freeze_clock(monkeypatch)
    ids = build_demo_store("store")
    with Store("store") as store:
        run_id = ids["hybrid-a0.5"]
        for step in (250, 500, 750):
            store.add_results(run_id, demo_results(-0.3 * (1 - step / 1000)), step=step, final=False)
        store.add_metrics(run_id, [("validation_loss", s, 0.5 + 2.0 * 0.996**s) for s in range(100, 1001, 100)])
        store.add_metrics(run_id, [("lr", s, 3e-5 * min(1.0, s / 100)) for s in range(5, 1001, 5)])
        store.add_event(run_id, "info", "device cuda:0")
        with mock.patch("hybtui.runs.database.random_id", lambda: "260106-110000-a1f9"):
            ids["zero"] = finished_run(store, RunConfig(model="me5-small", steps=0), "zero-shot-me5")
        store.db.table("metrics").delete_where("run_id = ?", [ids["zero"]])
    return ids


def page(run_id: str, key: str, ready):
    """Open the run's page from the list, once ``ready(screen)``, on the tab of ``key``."""
    tab = next(f"{name}-tab" for name, tab_key in TABS if tab_key == key)

    async def run_before(pilot):
        await until(
            pilot,
            lambda: pilot.app.screen.query(RunsTable) and pilot.app.screen.query_one(RunsTable).row_count == 6,
            "the run list",
        )
        screen = RunDetailScreen(pilot.app.store_path, run_id, 3600.0)
        pilot.app.push_screen(screen)
        await until(pilot, lambda: screen.run is not None and ready(screen), f"the page of {run_id}")
        await pilot.press(key)
        await until(pilot, lambda: screen.query_one(TabbedContent).active == tab, f"the tab {tab}")

    return run_before


@pytest.mark.parametrize("tab", ["2", "3", "4", "5", "6"])
def test_page_of_a_finished_run_snapshot(evaluated_demo, snap_compare, size, tab):
    def ready(screen) -> bool:
        return bool(screen.query_one(EvalPlot).series) and "cuda:0" in str(
            screen.query_one("#run-status", Static).render()
        )

    assert snap_compare(app(), terminal_size=size, run_before=page(evaluated_demo["hybrid-a0.5"], tab, ready))


def test_page_of_a_zero_shot_run_snapshot(evaluated_demo, snap_compare, size):
    def ready(screen) -> bool:
        return screen.query_one(LossPlot).empty_title.startswith("zero-shot")

    assert snap_compare(app(), terminal_size=size, run_before=page(evaluated_demo["zero"], "1", ready))


@pytest.fixture(params=list(SIZES))
def size(request) -> tuple[int, int]:
    return SIZES[request.param]
