"""A worker in journal mode (`hybtui worker ID --journal RUN_DIR`, as a Slurm job on another host
runs it) trains a real run without the store, and the store ingested from its journal holds
what a local worker's run holds — also when ingested over and over while it was writing."""

import json
import os
import shutil
import subprocess
import time

import pytest
from cli_helpers import TINY_CONFIG, hybtui

from hybtui.modeling import encoder as models
from hybtui.runs import journal, launcher
from hybtui.runs.records import Placement
from hybtui.runs.store import Store

SLURM = Placement(backend="slurm")
#: Metrics that depend on the machine's speed, not on the training.
TIMINGS = {"pairs_per_s"}


@pytest.fixture
def config(shared_data):
    models.prepare_tiny()
    return TINY_CONFIG.replace(data_dir=str(shared_data), steps=3)


def record(store, run_id):
    """A run's rows as comparable across stores: no ids, times, processes or speeds."""
    run = store.get_run(run_id)
    directory = store.run_dir(run_id)
    return {
        "run": (run.status, run.step, run.exit_code, run.error, run.total_steps),
        "metrics": [
            (m["key"], m["step"], None if m["key"] in TIMINGS else m["value"]) for m in store.metrics_since(run_id)
        ],
        "results": store.results(run_id, final_only=False),
        "events": [(e["level"], e["message"]) for e in store.events(run_id)],
        "artifacts": [(a["kind"], a["path"].relative_to(directory), a["step"]) for a in store.artifacts(run_id)],
    }


def local_run(path, config):
    with Store(path) as store:
        run_id = launcher.submit(store, config)
        assert launcher.wait(store, run_id, 240) == "finished"
        return record(store, run_id)


@pytest.mark.slow  # two training runs: about 3 minutes on a busy 2-core box
def test_a_journal_worker_without_the_store_records_what_a_local_one_does(tmp_path, config, monkeypatch):
    expected = local_run(tmp_path / "local", config)
    remote, mirror = tmp_path / "remote", tmp_path / "mirror"
    with Store(remote) as store, Store(mirror) as watcher:
        run_id = store.create_run(config, placement=SLURM)
        journal.write_snapshot(store, run_id)
        command = journal.worker_command(store, run_id)
        # The mirror store ingests the same journal while it is being written.
        watched = watcher.create_run(config, placement=SLURM)
        for name in (journal.JOURNAL, journal.SNAPSHOT):
            (watcher.run_dir(watched) / name).symlink_to(store.run_dir(run_id) / name)
    # The worker's host cannot reach the store: no database, and HYBTUI_STORE names nothing usable.
    (remote / "hybtui.db").rename(tmp_path / "hidden.db")
    (remote / "hybtui.db").mkdir()
    env = {**os.environ, "HYBTUI_STORE": "/dev/null/no-store"}
    worker = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    ingests = 0
    with Store(mirror) as watcher:
        while worker.poll() is None:
            ingests += journal.ingest(watcher, watched) > 0
            time.sleep(0.3)
        journal.ingest(watcher, watched)
        mirrored = record(watcher, watched)
    assert worker.returncode == 0, (store.run_dir(run_id) / launcher.LOG).read_text()
    assert ingests >= 2, "ingested while the worker wrote, more than once"
    assert list((remote / "hybtui.db").iterdir()) == [] and not any(remote.glob("hybtui.db-*"))
    (remote / "hybtui.db").rmdir()
    shutil.move(tmp_path / "hidden.db", remote / "hybtui.db")

    listed = json.loads(hybtui("runs", "ls", "--json", "--store", str(remote), check=True).stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(run_id, "finished")], "every command ingests"
    with Store(remote) as store:
        ingested = record(store, run_id)
        assert (store.get_run(run_id).pid, store.get_run(run_id).host) == (worker.pid, os.uname().nodename)
        assert journal.ingest(store, run_id) == 0
        assert record(store, run_id) == ingested, "ingesting again changes nothing"
    assert ingested == expected
    assert mirrored == expected


def test_a_failing_journal_worker_reports_its_failure_without_the_store(tmp_path, config):
    """Fast: the run fails as it loads its data; its end, error and traceback reach the store
    through the journal, and the outcome file holds the end too."""
    with Store(tmp_path / "store") as store:
        run_id = store.create_run(config.replace(train=(str(tmp_path / "gone.jsonl"),)), placement=SLURM)
        journal.write_snapshot(store, run_id)
        command = journal.worker_command(store, run_id)
        directory = store.run_dir(run_id)
    (tmp_path / "store" / "hybtui.db").rename(tmp_path / "hidden.db")
    (tmp_path / "store" / "hybtui.db").mkdir()
    env = {**os.environ, "HYBTUI_STORE": "/dev/null/no-store"}
    worker = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert worker.returncode == 1, worker.stderr
    assert list((tmp_path / "store" / "hybtui.db").iterdir()) == []
    (tmp_path / "store" / "hybtui.db").rmdir()
    shutil.move(tmp_path / "hidden.db", tmp_path / "store" / "hybtui.db")
    assert json.loads((directory / "outcome.json").read_text())["status"] == "failed"
    with Store(tmp_path / "store") as store:
        launcher.advance(store)
        run = store.get_run(run_id)
        assert run.status == "failed" and run.exit_code == 1 and "gone.jsonl" in run.error
        messages = [e["message"] for e in store.events(run_id)]
        assert messages[0] == "status queued → running" and messages[-1] == "status running → failed"
        assert any(m.startswith("Traceback") for m in messages)
