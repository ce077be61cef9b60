"""The GPU-aware queue, with real detached workers on the CPU: the pool is declared with
HYBTUI_GPUS (allocating needs no CUDA), and each worker's CUDA_VISIBLE_DEVICES is read from
/proc/PID/environ of the real process."""

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
from test_queue import SLOT_FILLED_S, WORKER_START_S, watch
from test_runs import hybtui, store_dir, submit, wait_for  # noqa: F401 - store_dir is a fixture

from hybtui.runs import launcher
from hybtui.runs.store import Store


@pytest.fixture
def pool_of_three(store_dir, monkeypatch):  # noqa: F811
    """A store whose host declares GPUs 0, 1 and 2; every worker is killed afterwards."""
    monkeypatch.setenv("HYBTUI_GPUS", "0,1,2")
    yield store_dir
    kill_workers(store_dir)


def kill_workers(store: Path) -> None:
    if not (store / "hybtui.db").exists():
        return
    for run in watch(store).values():
        for pid, kill in ((run["pgid"], os.killpg), (run["pid"], os.kill)):
            if pid:
                with contextlib.suppress(OSError):
                    kill(pid, signal.SIGKILL)


def visible_devices(pid: int) -> str | None:
    """CUDA_VISIBLE_DEVICES as the real process was started with it."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    values = [entry.split(b"=", 1)[1].decode() for entry in environ if entry.startswith(b"CUDA_VISIBLE_DEVICES=")]
    return values[0] if values else None


def running(store: Path) -> dict[str, dict]:
    return {run_id: run for run_id, run in watch(store).items() if run["status"] == "running"}


def held_gpus(store: Path) -> dict[str, str]:
    """Run id → the GPUs its real worker process sees."""
    return {run_id: visible_devices(run["pid"]) for run_id, run in running(store).items()}


def test_runs_get_disjoint_gpus_and_a_crashed_runs_gpu_goes_to_the_next(pool_of_three):
    store = pool_of_three
    runs = [submit("--gpus", "1", "--device", "cpu", "--max-parallel", "4", steps=100_000) for _ in range(4)]
    wait_for(lambda: len(running(store)) == 3, WORKER_START_S, "three running runs")
    devices = held_gpus(store)
    assert sorted(devices.values()) == ["0", "1", "2"], devices  # pairwise disjoint, one each
    (waiting,) = [r for r in runs if r not in devices]
    with Store(store) as db:
        assert launcher.schedule(db)[1] == {waiting: "waiting for 1 GPU (0 free)"}
        assert {r: db.get_run(r).gpus for r in devices} == devices  # the allocation is in the store
    shown = json.loads(hybtui("runs", "show", waiting, "--json").stdout)
    assert shown["run"]["waiting"] == "waiting for 1 GPU (0 free)"

    victim = runs[1] if runs[1] in devices else runs[0]
    freed = devices[victim]
    os.kill(watch(store)[victim]["pid"], signal.SIGKILL)
    # Nobody runs a command: the live workers' heartbeats sweep the crash and hand its GPU on.
    wait_for(lambda: watch(store)[waiting]["status"] == "running", SLOT_FILLED_S, "the waiting run to start")
    assert watch(store)[victim]["status"] == "crashed"
    assert visible_devices(watch(store)[waiting]["pid"]) == freed
    assert sorted(held_gpus(store).values()) == ["0", "1", "2"]

    pair = submit("--gpus", "2", "--device", "cpu", steps=100_000)
    with Store(store) as db:
        assert launcher.schedule(db)[1] == {pair: "waiting for 2 GPUs (0 free)"}
    for run_id in [r for r in runs if r != victim][:2]:
        hybtui("runs", "cancel", run_id)
    wait_for(lambda: watch(store)[pair]["status"] == "running", WORKER_START_S, "the two-GPU run to start")
    with Store(store) as db:
        assert len(db.get_run(pair).gpus.split(",")) == 2


@pytest.mark.parametrize(
    ("pool", "args", "message"),
    [
        ("0,1,2", ["--gpus", "4"], "--gpus 4 is more than this host's 3 GPU(s) (0,1,2); a run can never get them"),
        (None, ["--gpus", "1"], "--gpus 1: this host has no GPUs that NVML reports"),
        ("0,1", ["--gpus", "1", "--device", "cuda:1"], "--device cuda:1 names one GPU itself"),
        ("0,1", ["--gpus", "0", "--device", "cuda"], "--device cuda needs a GPU, but --gpus 0 asks for none"),
        ("0,x", ["--gpus", "1"], "HYBTUI_GPUS must list distinct GPU indices, e.g. 0,1,2,3 (got '0,x')"),
        ("0,1", ["--gpus", "2"], "--gpus 2 runs as a torchrun group from the queue: add --detach"),
    ],
)
def test_a_gpu_request_the_host_cannot_meet_is_refused_before_anything_is_written(
    store_dir,  # noqa: F811
    monkeypatch,
    pool,
    args,
    message,
):
    monkeypatch.delenv("HYBTUI_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # and no NVML GPU counts, whatever the host has
    if pool is not None:
        monkeypatch.setenv("HYBTUI_GPUS", pool)
    detach = [] if "torchrun" in message else ["--detach"]
    result = hybtui("train", *detach, "--model", "tiny", "--steps", "1", *args, check=False)
    assert result.returncode == 2  # hybtui's exit status for a refused command
    assert message in result.stderr
    assert not store_dir.exists() or not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())
