"""The app's GPU views against a real store: each run's devices in the run list (and no empty
column for a store of CPU runs), a run's GPU telemetry in its detail screen, read
incrementally while it runs (and no GPU tab for a run without samples), and the new-run
form's GPU count: what is free, the CLI's refusal of too many, the launch with the count."""

from __future__ import annotations

import time

import pytest
from test_tui import fill_new_run
from textual.widgets import Button, Input, Static, TabbedContent
from tui_fixtures import drive, new_run_form, refreshed, settle, wait_until

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.runs import gpus as gpu_pool
from hybtui.runs import launcher
from hybtui.runs.records import Placement
from hybtui.runs.store import Store
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.widgets.runs_table import RunsTable
from hybtui.tui.widgets.telemetry_plot import TelemetryPlot

CONFIG = RunConfig(model="tiny", train=("mlqa-r:en,de",), steps=10)


def sample(gpu: str, t: float, utilization: float, memory_gib: float) -> dict:
    return {
        "gpu": gpu,
        "time": t,
        "utilization": utilization,
        "memory_used": memory_gib * 1024,
        "memory_total": 140 * 1024,
        "power": 400 + utilization,
        "temperature": 50 + utilization / 10,
    }


@pytest.fixture
def store(tmp_path):
    """A CPU run, a finished run that had GPUs 0,1, a Slurm run and a run on GPU 2 (newest)."""
    with Store(tmp_path / "store") as store:
        cpu = store.create_run(CONFIG, name="on-cpu")
        store.set_status(cpu, "running")
        store.set_status(cpu, "finished")
        two = store.create_run(CONFIG, name="two-gpus")
        store.set_status(two, "running", gpus="0,1")
        store.set_status(two, "finished")
        slurm = store.create_run(CONFIG, name="on-slurm")
        store.db.table("runs").update(slurm, {"backend": "slurm", "job_id": "1234", "status": "crashed"})
        one = store.create_run(CONFIG, name="gpu-two")
        store.set_status(one, "running", gpus="2", pid=None)
        store.db.table("runs").update(one, {"host": "another-host"})  # not swept: its worker is elsewhere
        yield store


def ids(store: Store) -> dict[str, str]:
    return {run.name: run.id for run in store.list_runs()}


def test_run_list_shows_each_runs_devices_at_every_width(store):
    runs = ids(store)

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        devices = lambda: {name: str(table.get_cell(run, "devices")) for name, run in runs.items()}  # noqa: E731
        expected = {"on-cpu": "", "two-gpus": "gpu 0,1", "on-slurm": "slurm 1234", "gpu-two": "gpu 2"}
        assert devices() == expected
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: "id" not in [c.key.value for c in table.ordered_columns], "fitted to 80")
        assert devices() == expected
        await pilot.press("slash", *"gpu 0")
        await refreshed(pilot)
        assert [row.key.value for row in table.ordered_rows] == [runs["two-gpus"]]

    drive(store.path, scenario, size=(150, 30))


def test_a_store_of_cpu_runs_shows_no_devices_column(tmp_path):
    with Store(tmp_path / "store") as store:
        store.create_run(CONFIG, name="queued-on-cpu")

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        assert "devices" not in [c.key.value for c in table.ordered_columns]
        assert table.row_count == 1

    drive(tmp_path / "store", scenario, size=(150, 30))


def test_detail_shows_gpu_telemetry_and_reads_only_new_samples(store):
    run = ids(store)["gpu-two"]
    start = time.time() - 120
    store.add_telemetry(run, [sample("2", start + 30 * i, 80 + i, 30 + i) for i in range(3)])

    async def scenario(app, pilot):
        await pilot.press("enter")  # the newest run, on top
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.run_id == run
        tabs = screen.query_one(TabbedContent)
        assert tabs.get_tab("gpu-tab").display
        await pilot.press("8")
        assert tabs.active == "gpu-tab"
        plot = screen.query_one(TelemetryPlot)
        assert plot.series["gpu 2 %"].values.tolist() == [80, 81, 82]
        assert plot.series["gpu 2 GiB"].values.tolist() == [30, 31, 32]
        assert plot.series["gpu 2 %"].steps.tolist() == [0.0, 0.5, 1.0]  # minutes since the first sample
        latest = str(screen.query_one("#gpu-latest", Static).render())
        assert latest.strip() == "gpu 2  82 %  32.0/140.0 GiB  482 W  58 °C"
        store.add_telemetry(run, [sample("2", start + 90, 95, 40)])
        await wait_until(pilot, lambda: len(plot.series["gpu 2 %"]) == 4, "the new sample")
        assert plot.series["gpu 2 %"].values.tolist() == [80, 81, 82, 95]  # each sample once
        await refreshed(pilot)
        assert len(plot.series["gpu 2 %"]) == 4
        assert "95 %  40.0/140.0 GiB" in str(screen.query_one("#gpu-latest", Static).render())

    drive(store.path, scenario)


def test_detail_of_a_run_without_telemetry_has_no_gpu_tab(store):
    async def scenario(app, pilot):
        await pilot.press("down", "enter")  # the Slurm run: no samples
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.run_id == ids(store)["on-slurm"]
        await refreshed(pilot)
        tabs = screen.query_one(TabbedContent)
        assert not tabs.get_tab("gpu-tab").display
        await pilot.press("8")
        assert tabs.active == "loss-tab"
        assert not screen.query_one(TelemetryPlot).series

    drive(store.path, scenario)


def test_new_run_form_offers_the_free_gpus_checks_the_count_and_launches_with_it(store, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    monkeypatch.setenv("HYBTUI_GPUS", "0,1,2")  # GPU 2 is held by the running run `gpu-two`
    with pytest.raises(HybtuiError) as too_many:
        gpu_pool.check_count(4, "auto")

    async def scenario(app, pilot):
        screen, message = await new_run_form(pilot)
        assert isinstance(screen, NewRunScreen)
        gpus, line = screen.query_one("#gpus", Input), screen.query_one("#gpus-free", Static)
        assert gpus.value == "1"  # GPUs to give and the device may use one
        await wait_until(pilot, lambda: str(line.content) == "GPUs free: 0,1 of 0-2", "the free GPUs")
        gpus.value = "4"
        await wait_until(pilot, lambda: str(message.content) == str(too_many.value), "the CLI's refusal", 60)
        assert screen.query_one("#launch", Button).disabled
        gpus.value = "1"
        screen.query_one("#device", Input).value = "cpu"
        await wait_until(pilot, lambda: gpus.value == "0", "no GPU by default for the CPU")
        fill_new_run(screen, ["en", "de"], steps="3", batch_size="8", max_length="32", gpus="2")
        await wait_until(pilot, lambda: "3 steps, 2 GPUs" in str(message.content), "the form checked", 60)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), "the launched run's detail", 30)
        with Store(store.path) as db:
            run = db.get_run(app.screen.run_id)
        assert (run.gpu_count, run.status) == (2, "queued")  # the slot is held by `gpu-two`

    drive(store.path, scenario, size=(80, 24))


def test_the_form_says_when_a_host_has_no_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBTUI_GPUS", "")

    async def scenario(app, pilot):
        screen, _ = await new_run_form(pilot)
        assert str(screen.query_one("#gpus-free", Static).content) == "no GPUs on this host"
        assert screen.query_one("#gpus", Input).value == "0"

    drive(tmp_path / "store", scenario, size=(80, 24))


def test_detail_of_a_queued_run_says_why_it_waits(store, monkeypatch):
    monkeypatch.setenv("HYBTUI_GPUS", "2")  # held by the running `gpu-two`
    launcher.set_max_parallel(store, 2)
    waiting = store.create_run(CONFIG, name="waits", placement=Placement(gpu_count=1))

    async def scenario(app, pilot):
        await pilot.press("enter")  # the newest run, on top
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == waiting
        await refreshed(pilot)
        header = str(app.screen.query_one("#run-status", Static).render())
        assert header.startswith("queued · waiting for 1 GPU (0 free)"), header
        assert store.get_run(waiting).status == "queued"

    drive(store.path, scenario)
