"""Runs on a real single-node Slurm (scripts/slurm.sh): submitted through submitit, reported
through their journal, ended by the worker or by the sweep from Slurm's job state.

Three runs share the cluster at once, to keep the wall time small (still minutes on a 2-core
machine: these are slow tests): one through the CLI that
finishes, one through the store's default backend (as the app launches) that is cancelled,
and one whose worker is killed with SIGKILL, found crashed and resumed to the end. Without
sbatch these tests are skipped, unless HYBTUI_REQUIRE_SLURM=1 (CI), where they fail.
"""

import json
import os
import shutil
import signal
import time

import pytest
from cli_helpers import TINY, TINY_CONFIG, hybtui

from hybtui.modeling import encoder as models
from hybtui.runs import launcher, slurm
from hybtui.runs.records import Placement
from hybtui.runs.store import Store
from hybtui.training import checkpoint as checkpoints

HAS_SLURM = shutil.which("sbatch") is not None
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        not HAS_SLURM and os.environ.get("HYBTUI_REQUIRE_SLURM") != "1",
        reason="no Slurm here (start one with scripts/slurm.sh)",
    ),
]
#: Workers load torch, the data and the model on a shared 2-core machine.
START_S = 240
#: The final evaluation of the finishing runs, on a few queries (TOML for `hybtui train --config`).
QUICK_EVAL = "final_eval_max_queries = 20\n"


def loss_steps(store, run_id):
    return [m["step"] for m in store.metrics_since(run_id, 0, keys=["loss"])]


def wait_for(predicate, timeout, what, store=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store is not None:
            launcher.sweep(store)  # ingest the journals, end the runs whose job is gone
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


#: Three runs on a 2-core node take minutes: the cluster's tests run with the slow ones
#: (`-m slow`); CI runs the checks that need Slurm's answers but no job.
cluster_test = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, shared_data):
    """Three runs submitted together: `finishing` (CLI, 3 steps), `cancelled` (the store's
    default backend, long), `killed` (long, a checkpoint every 3 steps)."""
    tmp = tmp_path_factory.mktemp("slurm")
    store_dir = tmp / "store"
    config = tmp / "quick_eval.toml"
    config.write_text(QUICK_EVAL)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HYBTUI_STORE", str(store_dir))
        env.setenv("HYBTUI_DATA_DIR", str(shared_data))
        models.prepare_tiny()
        args = ("train", "--json", "--config", str(config), *TINY, "--steps", "3", "--warmup-steps", "1")
        finishing = json.loads(hybtui(*args, "--backend", "slurm", "--time", "10", check=True).stdout)["id"]
        hybtui("runs", "backend", "slurm", "--partition", "debug", "--time", "0:30:00", check=True)
        with Store(store_dir) as store:
            long = TINY_CONFIG.replace(steps=100_000, eval=(), data_dir=str(shared_data))
            cancelled = launcher.submit(store, long)  # as the app's new-run form does
            resumable = TINY_CONFIG.replace(steps=20, checkpoint_every=2, eval=())
            killed = launcher.submit(store, resumable.replace(data_dir=str(shared_data)))
        yield store_dir, {"finishing": finishing, "cancelled": cancelled, "killed": killed}
        with Store(store_dir) as store:
            jobs = [run.job_id for run in store.list_runs() if run.job_id]
        if jobs:
            os.system(f"scancel {' '.join(jobs)} 2>/dev/null")


@cluster_test
def test_a_killed_worker_is_crashed_then_resumed_to_the_end(cluster):
    store_dir, runs = cluster
    with Store(store_dir) as store:
        run_id = runs["killed"]
        wait_for(lambda: checkpoints.latest_resumable(store.run_dir(run_id)), START_S, "a checkpoint", store)
        os.kill(store.get_run(run_id).pid, signal.SIGKILL)  # the worker, on the (single) node
        assert launcher.wait(store, run_id, 60) == "crashed"
        crashed = store.get_run(run_id)
        assert "without the worker recording an end" in crashed.error
        assert hybtui("runs", "resume", run_id, check=True).stdout.strip() == f"{run_id}: queued"
        resumed = store.get_run(run_id)
        assert resumed.job_id and resumed.job_id != crashed.job_id
        assert launcher.wait(store, run_id, START_S) == "finished"
        assert loss_steps(store, run_id) == list(range(1, 21))


@cluster_test
def test_a_slurm_run_finishes_with_its_metrics_in_the_store(cluster):
    store_dir, runs = cluster
    with Store(store_dir) as store:
        run = store.get_run(runs["finishing"])
        assert run.backend == "slurm" and run.job_id and json.loads(run.placement) == {"time": "10"}
        assert launcher.wait(store, run.id, START_S) == "finished"
        run = store.get_run(run.id)
        assert run.step == 3 and run.exit_code == 0
        assert loss_steps(store, run.id) == [1, 2, 3]
        assert store.results(run.id), "the final evaluation's rows"
        assert run.host and run.pid  # recorded by the worker, on the node
        assert f"submitted to Slurm as job {run.job_id} (the default partition)" in [
            e["message"] for e in store.events(run.id)
        ]
    wait_for(lambda: slurm.state(run.job_id) in ("COMPLETED", slurm.GONE), 30, "the job to complete")


@cluster_test
def test_the_store_default_backend_places_a_run_and_cancel_stops_its_job(cluster):
    store_dir, runs = cluster
    assert hybtui("runs", "backend", check=True).stdout.strip() == "slurm --partition debug --time 0:30:00"
    with Store(store_dir) as store:
        run_id = runs["cancelled"]
        assert json.loads(store.get_run(run_id).placement) == {"partition": "debug", "time": "0:30:00"}
        wait_for(lambda: len(loss_steps(store, run_id)) >= 2, START_S, "two steps", store)
        job = store.get_run(run_id).job_id
        assert hybtui("runs", "cancel", run_id, check=True).stdout.strip() == f"{run_id}: cancelling"
        assert launcher.wait(store, run_id, 60) == "cancelled"
        run = store.get_run(run_id)
        assert checkpoints.is_resumable(checkpoints.path_for(store.run_dir(run_id), run.step))
    wait_for(lambda: slurm.state(job) not in slurm.ACTIVE, 30, "the job to end")


def test_bad_slurm_input_is_refused_before_anything_is_written(tmp_path, shared_data):
    store_dir = tmp_path / "store"
    base = ("train", "--store", str(store_dir), "--data-dir", str(shared_data), *TINY, "--backend", "slurm")
    unknown = hybtui(*base, "--partition", "nowhere")
    assert unknown.returncode != 0
    assert "unknown Slurm partition 'nowhere'; known partitions: debug" in unknown.stderr
    bad_time = hybtui(*base, "--time", "4 hours")
    assert "--time '4 hours' is not a Slurm time" in bad_time.stderr
    assert "limit" in hybtui(*base, "--time", "1:75:00").stderr
    assert "--mem '16 GB' is not a Slurm memory size" in hybtui(*base, "--mem", "16 GB").stderr
    assert "only apply to --backend slurm" in hybtui(*base[:-2], "--partition", "debug").stderr
    with pytest.raises(slurm.SlurmError, match="the nodes of partition debug have no GPUs"):
        slurm.check(Placement(2, "slurm", {"partition": "debug"}))
    assert not store_dir.exists()
