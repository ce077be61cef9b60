"""The queue advances whenever a slot frees, however it frees, and launching leaves no zombies.

Real detached workers (the tiny model), real signals. A is a long run holding the one slot,
B waits queued behind it. The store is watched with read-only SQLite reads (`watch`), which
sweep nothing and start nothing, so only the process under test can have started B.
"""

import contextlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from cli_helpers import TINY_CONFIG
from test_runs import hybtui, store_dir, submit, wait_for  # noqa: F401 - store_dir is a fixture
from tui_fixtures import drive, wait_until

from hybtui.config import RunConfig
from hybtui.runs import launcher
from hybtui.runs.records import pid_alive
from hybtui.runs.store import Store
from hybtui.tui.widgets.runs_table import RunsTable

#: Must-show 2: B runs within this many seconds of A's kill.
SLOT_FILLED_S = 15
#: Generous: workers load torch, the data and the model on a shared 2-core machine.
WORKER_START_S = 240


def watch(store: Path) -> dict[str, dict]:
    """Every run's status, pid and step, read without opening a Store (no sweep, no advance)."""
    with contextlib.closing(sqlite3.connect(f"file:{store / 'hybtui.db'}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        return {row["id"]: dict(row) for row in conn.execute("SELECT id, status, pid, pgid, step FROM runs")}


def trained_steps(store: Path, run_id: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{store / 'hybtui.db'}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM metrics WHERE run_id = ? AND key = 'loss'", [run_id]).fetchone()[0]


def zombie_children() -> list[int]:
    """Exited children of this process that nobody reaped (`<defunct>`)."""
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if int(ppid) == os.getpid() and state == "Z":
                zombies.append(int(stat.parent.name))
    return zombies


@pytest.fixture
def a_running_b_queued(store_dir):  # noqa: F811
    """A (100,000 steps: it never ends on its own here) training in the one slot, B (2 steps)
    queued; every worker is killed afterwards."""
    a = submit(steps=100_000)
    b = submit(steps=2)
    assert watch(store_dir)[b]["status"] == "queued"
    wait_for(lambda: trained_steps(store_dir, a) >= 1, WORKER_START_S, "A's first step")
    yield store_dir, a, b
    for run in watch(store_dir).values():
        if run["status"] == "running":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run["pgid"] or run["pid"], signal.SIGKILL)


def kill_group(store: Path, run_id: str) -> float:
    """SIGKILL the run's whole process group (the worker leads it); the time of the kill."""
    pid = watch(store)[run_id]["pid"]
    assert os.getpgid(pid) == pid == os.getsid(pid), "the worker leads its own session and process group"
    os.killpg(pid, signal.SIGKILL)
    return time.monotonic()


def test_a_crash_frees_the_slot_for_runs_ls_alone(a_running_b_queued):
    store, a, b = a_running_b_queued
    killed = kill_group(store, a)

    def listed() -> dict[str, str]:
        return {r["id"]: r["status"] for r in json.loads(hybtui("runs", "ls", "--json").stdout)}

    statuses = wait_for(lambda: (s := listed())[b] == "running" and s, SLOT_FILLED_S, "B running")
    assert time.monotonic() - killed < SLOT_FILLED_S
    assert statuses[a] == "crashed"


def test_a_crash_frees_the_slot_with_only_the_app_open(a_running_b_queued):
    store, a, b = a_running_b_queued

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)

        def shown(run_id: str) -> str:
            """The status word of the run's row ("running 0/2": running)."""
            return str(table.get_cell(run_id, "status")).split(" ")[0] if run_id in table.rows else ""

        assert shown(b) == "queued"
        kill_group(store, a)
        await wait_until(pilot, lambda: shown(b) == "running", "B shown running", SLOT_FILLED_S)
        assert shown(b) == "running" and shown(a) == "crashed", (shown(a), shown(b))
        assert watch(store)[b]["status"] == "running"

    drive(store, scenario, size=(120, 30), refresh_s=0.5)


def test_cancelling_the_running_run_starts_the_queued_one(a_running_b_queued):
    store, a, b = a_running_b_queued
    assert hybtui("runs", "cancel", a).stdout.strip().endswith("cancelling")
    wait_for(lambda: watch(store)[b]["status"] == "running", 120, "B running after A's cancel")
    assert watch(store)[a]["status"] == "cancelled"


def test_deleting_a_run_whose_worker_died_unnoticed_starts_the_queued_one(store_dir):  # noqa: F811
    """The test process is the launcher here: its workers are not its children, so a killed
    one and a finished one both leave no zombie behind."""
    with Store(store_dir) as store:  # opened before the kill: its own sweep has seen nothing
        config = TINY_CONFIG.replace(data_dir=os.environ["HYBTUI_DATA_DIR"])
        a = launcher.submit(store, config.replace(steps=100_000))
        b = launcher.submit(store, config.replace(steps=2))
        pid = store.get_run(a)["pid"]
        assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid()
        wait_for(lambda: trained_steps(store_dir, a) >= 1, WORKER_START_S, "A's first step")
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 10, "A's worker gone")
        assert store.get_run(a)["status"] == "running"  # nobody swept: its slot is still taken
        launcher.delete(store, a)
        assert store.get_run(b)["status"] == "running"
        b_pid = store.get_run(b)["pid"]
        assert launcher.wait(store, b, WORKER_START_S) == "finished", store.get_run(b)["error"]
    wait_for(lambda: not pid_alive(b_pid), 30, "B's worker to exit")  # a zombie counts as exited
    assert zombie_children() == []


def test_a_queue_that_cannot_advance_does_not_stop_a_listing(tmp_path):
    """Reading must work where starting cannot (here the queue's lock cannot be opened): the
    listing is complete, and one warning line says why the queued run was not started."""
    store = tmp_path / "store"
    with Store(store) as db:
        queued = db.create_run(RunConfig(model="tiny", steps=2), name="waiting")
    (store / "queue.lock").mkdir()
    proc = hybtui("runs", "ls", "--json", "--store", str(store))
    assert [(r["id"], r["status"]) for r in json.loads(proc.stdout)] == [(queued, "queued")]
    assert proc.stderr.startswith("hybtui: warning: queued runs not started: ") and proc.stderr.count("\n") == 1
