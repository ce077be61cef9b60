"""Runs executed by real detached worker processes: lifecycle, kill -9, cancel, resume, queue."""

import json
import os
import signal
import sqlite3
import time

import pytest
from cli_helpers import TINY
from cli_helpers import hybtui as run_hybtui

from hybtui.modeling import encoder as models
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.training.checkpoint import latest_resumable as latest_checkpoint


def hybtui(*args, check=True):
    """The command, which must succeed unless ``check`` is False."""
    return run_hybtui(*args, check=check)


@pytest.fixture
def store_dir(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    models.prepare_tiny()  # once per session cache, so workers start quickly
    return tmp_path / "store"


def submit(*extra, steps=3):
    args = ["train", "--detach", "--json", *TINY, "--steps", str(steps), "--warmup-steps", "1", *extra]
    return json.loads(hybtui(*args).stdout)["id"]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def loss_steps(store, run_id):
    return [m["step"] for m in store.metrics_since(run_id, 0, keys=["loss"])]


def test_detached_run_finishes_and_reports_everything(store_dir):
    run_id = submit()
    with Store(store_dir) as store:
        assert launcher.wait(store, run_id, 180) == "finished"
        run = store.get_run(run_id)
        assert run["exit_code"] == 0 and run["step"] == 3
        assert loss_steps(store, run_id) == [1, 2, 3]
        assert {r["bench"] for r in store.results(run_id)} == {"xquad-r"}
        assert store.artifacts(run_id, "checkpoint")
    assert (store_dir / "runs" / run_id / "worker.log").is_file()
    listed = json.loads(hybtui("runs", "ls", "--json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(run_id, "finished")]
    assert {"id", "name", "status", "pid", "created_at"} <= set(listed[0])


def test_kill_9_leaves_crashed_with_flushed_metrics_then_resume_has_no_gap(store_dir):
    run_id = submit("--checkpoint-every", "4", steps=400)  # long enough not to end before the kill
    with Store(store_dir) as store:
        wait_for(
            lambda: len(loss_steps(store, run_id)) >= 9 and latest_checkpoint(store.run_dir(run_id)),
            240,
            "nine steps and a checkpoint",
        )
        before = loss_steps(store, run_id)
        pgid = store.get_run(run_id)["pgid"]
    os.killpg(pgid, signal.SIGKILL)
    killed = time.monotonic()
    with Store(store_dir) as store:
        wait_for(lambda: store.sweep_orphans() or store.get_run(run_id)["status"] == "crashed", 15, "crashed")
        assert time.monotonic() - killed < 15
        after = loss_steps(store, run_id)
        assert after[: len(before)] == before, "metrics written before the kill must survive"
        assert store.get_run(run_id)["step"] == after[-1], "a crashed run's step is its last completed step"
        launcher.resume(store, run_id)
        assert launcher.wait(store, run_id, 240) == "finished"
        assert loss_steps(store, run_id) == list(range(1, 401)), "resumed steps: no gap, no duplicate"


def test_cancel_leaves_a_loadable_checkpoint(store_dir):
    run_id = submit(steps=400)
    with Store(store_dir) as store:
        wait_for(lambda: len(loss_steps(store, run_id)) >= 3, 180, "three steps")
        assert hybtui("runs", "cancel", run_id).stdout.strip().endswith("cancelling")
        assert launcher.wait(store, run_id, 60) == "cancelled"
        checkpoint = latest_checkpoint(store.run_dir(run_id))
        assert checkpoint is not None
        step = int(checkpoint.name.split("-")[-1])
        assert step == store.get_run(run_id)["step"] >= 3
    encoder = models.load_encoder(models.encoder_spec(str(checkpoint)), device="cpu")
    assert encoder.encode(["query text"], "query").shape == (1, 32)


def test_queue_starts_the_next_run_when_a_slot_frees(store_dir):
    first, second = submit(), submit()
    with Store(store_dir) as store:
        assert store.get_run(second)["status"] == "queued"  # one slot by default
        assert launcher.wait(store, first, 180) == "finished"
        assert launcher.wait(store, second, 180) == "finished"  # started by the first worker


def test_bad_input_changes_nothing(store_dir, tmp_path):
    run_id = submit()
    with Store(store_dir) as store:
        launcher.wait(store, run_id, 180)

    def contents():  # logical contents: in WAL mode the file's bytes move on checkpoints
        with sqlite3.connect(store_dir / "hybtui.db") as conn:
            return list(conn.iterdump())

    database = contents()
    proc = hybtui("runs", "resume", run_id, check=False)
    assert proc.returncode == 2 and "only crashed or cancelled runs can be resumed" in proc.stderr
    proc = hybtui("runs", "show", "nosuchrun", check=False)
    assert proc.returncode == 2 and "no run with id 'nosuchrun'" in proc.stderr
    assert contents() == database
    not_sqlite = tmp_path / "other"
    not_sqlite.mkdir()
    (not_sqlite / "hybtui.db").write_text("not a database")
    proc = hybtui("runs", "ls", "--store", str(not_sqlite), check=False)
    assert proc.returncode == 2 and "not a SQLite database" in proc.stderr
    assert (not_sqlite / "hybtui.db").read_text() == "not a database"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = hybtui("runs", "ls", "--store", str(blocker / "store"), check=False)
    assert proc.returncode == 2 and str(blocker) in proc.stderr
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(not_sqlite / "hybtui.db").execute("select 1 from runs")


def test_compare_export_and_remove(store_dir):
    ids = []
    for sampler in ("mono", "hybrid"):
        out = hybtui(
            "train",
            "--json",
            "--model",
            "tiny",
            "--sampler",
            sampler,
            "--train",
            "mlqa-r:en,de",
            "--eval",
            "xquad-r:en,el",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "32",
        )
        ids.append(json.loads(out.stdout)["id"])
    compared = json.loads(hybtui("compare", *ids, "--json").stdout)
    assert compared["differing_parameters"] == {"sampler": ["mono", "hybrid"]}
    assert set(compared["headline"][ids[0]]) >= {"xquad-r mono map", "xquad-r multi rank_distance"}
    # each worker kept its final per-query scores: the runs are tested question by question
    assert all((store_dir / "runs" / i / "queries" / "final.npz").is_file() for i in ids)
    assert {c["query_lang"] for c in compared["significance"]["comparisons"]} == {"avg", "en", "el"}
    table = hybtui("compare", *ids).stdout
    assert "parameters that differ" in table and "per query language" in table
    csv_lines = hybtui("runs", "export", *ids, "--format", "csv").stdout.splitlines()
    assert (
        csv_lines[0]
        == "run_id,run_name,model,sampler,alpha,step,final,bench,setting,query_lang,doc_lang,metric,value,seen"
    )
    assert {line.split(",")[0] for line in csv_lines[1:]} == set(ids)
    exported = json.loads(hybtui("runs", "export", "--format", "json").stdout)
    assert {e["run"]["id"] for e in exported} == set(ids) and all(e["results"] for e in exported)
    md = hybtui("runs", "export", *ids, "--format", "md").stdout.splitlines()
    assert len(md) == 4 and md[0].startswith("| run |")
    proc = hybtui("compare", ids[0], check=False)
    assert proc.returncode == 2 and "2 to 6 runs" in proc.stderr
    hybtui("runs", "rm", ids[0], "--yes")
    assert not (store_dir / "runs" / ids[0]).exists()
    assert [r["id"] for r in json.loads(hybtui("runs", "ls", "--json").stdout)] == [ids[1]]
