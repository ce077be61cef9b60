"""A full disk under a running run: the run ends `failed` with the cause, the database stays
sound and other runs are untouched.

Real pieces only: a small tmpfs mounted as the store, real detached tiny-model workers,
the real CLI. (a) The tmpfs holds the database but not a checkpoint, so the final save
fails with ENOSPC. (b) A filler file takes the last byte while the run trains, so the
next metrics insert fails with SQLITE_FULL; the filler is removed once the worker has
exited, and the next command that opens the store records the failure from the worker's
outcome file."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_helpers import TINY, hybtui
from test_runs import wait_for

from hybtui.config import RunConfig
from hybtui.modeling import encoder as models
from hybtui.results import ResultRow
from hybtui.runs.outcome import read_outcome
from hybtui.runs.records import pid_alive
from hybtui.runs.store import Store


def submit(*extra: str) -> str:
    proc = hybtui("train", "--detach", "--json", *TINY, "--warmup-steps", "1", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["id"]


@pytest.fixture
def small_disk(tmp_path, shared_data, monkeypatch, request):
    """A tmpfs of the size the test names (MiB) as the store; unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size = request.param
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    monkeypatch.setenv("HYBTUI_STORE", str(mount / "store"))
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    models.prepare_tiny()
    try:
        yield mount / "store"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def finished_run(store_dir: Path) -> str:
    """A run that finished before the disk filled, with metrics, results and events."""
    with Store(store_dir) as store:
        run_id = store.create_run(RunConfig(model="tiny", steps=2), name="earlier", status="running")
        store.add_metrics(run_id, [("loss", step, 1.0 / step) for step in (1, 2)])
        store.add_results(run_id, [ResultRow("xquad-r", "mono", "en", "en", "map", 0.5, None)], step=2, final=True)
        store.set_status(run_id, "finished", exit_code=0, step=2)
    return run_id


def rows_of(store_dir: Path, run_id: str) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(store_dir / "hybtui.db")
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} WHERE {key} = ? ORDER BY rowid", [run_id]).fetchall()
            for table, key in (
                ("runs", "id"),
                ("metrics", "run_id"),
                ("results", "run_id"),
                ("events", "run_id"),
                ("artifacts", "run_id"),
            )
        }
    finally:
        conn.close()


def integrity(store_dir: Path) -> list[str]:
    conn = sqlite3.connect(store_dir / "hybtui.db")
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def worker_gone(store_dir: Path, run_id: str) -> bool:
    conn = sqlite3.connect(f"file:{store_dir / 'hybtui.db'}?mode=ro", uri=True)
    try:
        pid = conn.execute("SELECT pid FROM runs WHERE id = ?", [run_id]).fetchone()[0]
    finally:
        conn.close()
    return pid is not None and not pid_alive(pid)


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem has no byte left."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        chunk = b"\0" * 2**20
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler


def shown_failed(store_dir: Path, run_id: str, cause: str) -> str:
    proc = hybtui("runs", "show", run_id)
    assert proc.returncode == 0, proc.stderr
    assert run_id in proc.stdout.splitlines()[0] and "failed" in proc.stdout.splitlines()[0], proc.stdout
    assert cause in proc.stdout, proc.stdout
    return proc.stdout


@pytest.mark.parametrize("small_disk", [24], indirect=True)
def test_disk_full_during_a_checkpoint_fails_the_run_with_the_cause(small_disk):
    earlier = finished_run(small_disk)
    before = rows_of(small_disk, earlier)
    run_id = submit("--steps", "2")  # the final checkpoint (~110 MB) cannot fit in 24 MiB
    wait_for(lambda: worker_gone(small_disk, run_id), 180, "the worker to exit")
    shown = shown_failed(small_disk, run_id, "No space left on device")
    assert "step 2/2" in shown  # the last completed step, not a stale heartbeat
    with Store(small_disk) as store:
        run = store.get_run(run_id)
        assert run["status"] == "failed" and run["exit_code"] == 1 and run["step"] == 2
        assert "No space left on device" in run["error"]
    log = (small_disk / "runs" / run_id / "worker.log").read_text()
    assert "training steps 1–2" in log and "No space left on device" in log and "Traceback" in log
    assert integrity(small_disk) == ["ok"]
    assert rows_of(small_disk, earlier) == before


@pytest.mark.slow  # about 40 s: a 400-step worker, the disk filled, its end retried
@pytest.mark.parametrize("small_disk", [48], indirect=True)
def test_disk_full_during_a_database_write_fails_the_run_once_space_is_back(small_disk):
    earlier = finished_run(small_disk)
    before = rows_of(small_disk, earlier)
    run_id = submit("--steps", "100000")  # the disk fills long before its final checkpoint
    with Store(small_disk) as store:
        wait_for(lambda: store.metrics_since(run_id, keys=["loss"]), 180, "the first loss rows")
        pid = store.get_run(run_id)["pid"]
    filler = fill(small_disk.parent)
    try:  # a full tmpfs can refuse even a reader (its -shm), so the worker is watched by pid
        wait_for(lambda: not pid_alive(pid), 120, "the worker to exit on the full disk")
    finally:
        filler.unlink()
    shown_failed(small_disk, run_id, "database or disk is full")
    with Store(small_disk) as store:
        run = store.get_run(run_id)
        assert run["status"] == "failed" and run["exit_code"] == 1
        assert "No space left on device" in run["error"]
        steps = [m["step"] for m in store.metrics_since(run_id, keys=["loss"])]
        assert run["step"] >= max(steps)  # the step it ended at is one it completed
        # The worker's outcome file, written on the full disk, holds the same end: whoever
        # recorded it (the worker's retries after the space came back, or the sweep).
        outcome = read_outcome(store.run_dir(run_id), pid)
        assert outcome is not None and (outcome["status"], outcome["error"]) == ("failed", run["error"])
    assert integrity(small_disk) == ["ok"]
    assert rows_of(small_disk, earlier) == before
