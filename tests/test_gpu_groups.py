"""Multi-process runs from the queue: a `--gpus 2` run on the CPU is a detached two-process
torchrun group (gloo) whose rank 0 records. Real processes, real signals; the pool is declared
with HYBTUI_GPUS."""

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from test_gpu_queue import kill_workers
from test_queue import WORKER_START_S, trained_steps, watch
from test_runs import hybtui, loss_steps, store_dir, wait_for  # noqa: F401 - store_dir is a fixture

from hybtui.modeling import encoder as models
from hybtui.runs.records import pid_alive
from hybtui.runs.store import Store
from hybtui.training import checkpoint as checkpoints

pytestmark = pytest.mark.slow  # several torchrun groups of two workers each: minutes on a 2-core CPU


@pytest.fixture
def pool_of_two(store_dir, monkeypatch, tmp_path):  # noqa: F811
    """GPUs 0 and 1 declared, a tiny model without dropout (ranks draw other dropout masks than
    one process would, so only a deterministic model can be compared to the step), and every
    worker killed afterwards."""
    monkeypatch.setenv("HYBTUI_GPUS", "0,1")
    model = tmp_path / "tiny-no-dropout"
    shutil.copytree(models.checkpoint_dir("tiny"), model)
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))
    yield store_dir, model
    kill_workers(store_dir)


def _train(model: Path, *extra: str) -> str:
    args = ["train", "--json", "--model", str(model), "--train", "mlqa-r:en,de,es", "--eval", "xquad-r:en"]
    args += ["--batch-size", "8", "--max-length", "32", "--warmup-steps", "1", "--device", "cpu", *extra]
    return json.loads(hybtui(*args).stdout)["id"]


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def ranks(torchrun_pid: int) -> list[int]:
    """The worker processes torchrun started (its children)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if parent_of(int(stat.parent.name)) == torchrun_pid:
                children.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(children)


def group_of(store: Path, run_id: str) -> tuple[int, list[int]]:
    """torchrun's pid and its ranks: the run records rank 0, which took it over from torchrun."""
    torchrun = parent_of(watch(store)[run_id]["pid"])
    return torchrun, ranks(torchrun)


def test_a_two_process_group_trains_as_one_process_would(pool_of_two):
    store, model = pool_of_two
    single = _train(model, "--steps", "6", "--gpus", "0")  # in the foreground, one process
    group = _train(model, "--steps", "6", "--gpus", "2", "--detach")
    wait_for(lambda: watch(store)[group]["status"] == "finished", WORKER_START_S, "the group to finish")
    with Store(store) as db:
        assert db.get_run(group).gpus == "0,1"
        expected = {m["step"]: m["value"] for m in db.metrics_since(single, 0, keys=["loss"])}
        got = {m["step"]: m["value"] for m in db.metrics_since(group, 0, keys=["loss"])}
    assert sorted(got) == sorted(expected) == list(range(1, 7))
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, abs=1e-5), f"step {step}"


def test_cancel_stops_the_whole_group_and_a_lost_rank_crashes_it_until_resumed(pool_of_two):
    store, model = pool_of_two
    cancelled = _train(model, "--steps", "100000", "--gpus", "2", "--detach")
    wait_for(lambda: trained_steps(store, cancelled) >= 2, WORKER_START_S, "two steps of the group")
    torchrun, members = group_of(store, cancelled)
    assert len(members) == 2
    hybtui("runs", "cancel", cancelled)
    wait_for(lambda: watch(store)[cancelled]["status"] == "cancelled", 120, "the group to be cancelled")
    wait_for(lambda: not any(pid_alive(p) for p in [torchrun, *members]), 60, "every process of the group to end")

    killed = _train(model, "--steps", "24", "--checkpoint-every", "2", "--gpus", "2", "--detach")
    run_dir = store / "runs" / killed
    wait_for(lambda: checkpoints.latest_resumable(run_dir), WORKER_START_S, "a checkpoint of the group")
    torchrun, members = group_of(store, killed)
    os.kill(members[-1], signal.SIGKILL)  # a rank other than the one that records
    wait_for(lambda: watch(store)[killed]["status"] == "crashed", 120, "the group to be crashed")
    wait_for(lambda: not any(pid_alive(p) for p in [torchrun, *members]), 60, "every process of the group to end")
    hybtui("runs", "resume", killed)
    wait_for(lambda: watch(store)[killed]["status"] == "finished", 2 * WORKER_START_S, "the resumed group to finish")
    with Store(store) as db:
        assert loss_steps(db, killed) == list(range(1, 25))
