"""The journal hand-over (hybtui.runs.journal): what a worker on another host appends, and how
the store's host ingests it — exactly once, through the store's rules, whatever the lines hold."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cli_helpers import TINY_CONFIG

from hybtui.results import ResultRow
from hybtui.runs import journal, launcher
from hybtui.runs.journal import JOURNAL, JournalRecorder
from hybtui.runs.records import Placement
from hybtui.runs.store import Store

SLURM = Placement(backend="slurm")


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store") as opened:
        yield opened


def remote_run(store, placement=SLURM):
    run_id = store.create_run(TINY_CONFIG, placement=placement)
    journal.write_snapshot(store, run_id)
    return run_id


def rows(store, run_id):
    """Everything the store holds of a run but ids and the ingest's offset."""
    run = dict(store.get_run(run_id))
    run.pop("journal_offset")
    return {
        "run": run,
        "metrics": [(m["key"], m["step"], m["value"], m["time"]) for m in store.metrics_since(run_id)],
        "results": store.results(run_id, final_only=False),
        "events": [(e["level"], e["message"], e["time"]) for e in store.events(run_id)],
        "artifacts": [(a["kind"], a["path"], a["step"]) for a in store.artifacts(run_id)],
        "telemetry": [{k: v for k, v in t.items() if k != "id"} for t in store.telemetry(run_id)],
    }


def report_a_run(recorder, run_id):
    recorder.set_status(run_id, "running", pid=os.getpid(), pgid=os.getpgid(0), host="node-7")
    recorder.add_metrics(run_id, [("loss", 1, 2.5), ("lr", 1, 1e-4), ("loss", 2, float("nan"))])
    recorder.heartbeat(run_id, 2)
    recorder.add_results(run_id, [ResultRow("xquad-r", "mono", "en", "en", "map", 0.5, None)], 2, True)
    (recorder.run_dir / "checkpoint-2").mkdir()
    recorder.add_artifact(run_id, "checkpoint", recorder.run_dir / "checkpoint-2", 2)
    recorder.add_telemetry(run_id, [{"time": 5.0, "gpu": "0", "utilization": 97.0, "memory_used": 1000.0}])
    recorder.add_event(run_id, "info", "evaluation done")
    recorder.set_status(run_id, "finished", exit_code=0, step=2)


def test_ingest_applies_every_line_once_with_the_workers_times(store):
    run_id = remote_run(store)
    recorder = JournalRecorder(store.run_dir(run_id))
    report_a_run(recorder, run_id)
    lines = (store.run_dir(run_id) / JOURNAL).read_bytes().splitlines()
    assert journal.ingest(store, run_id) == len(lines) == 8
    first = rows(store, run_id)
    assert journal.ingest(store, run_id) == 0 and journal.ingest_all(store) == 0
    assert rows(store, run_id) == first, "a second ingest changes nothing"
    run = store.get_run(run_id)
    assert (run.status, run.pid, run.pgid, run.host, run.exit_code, run.step) == (
        "finished",
        os.getpid(),
        None,
        "node-7",
        0,
        2,
    )
    times = [json.loads(line)["time"] for line in lines]
    assert run.heartbeat_at == times[2] and run.started_at == times[0] and run.ended_at == times[-1]
    assert [(m[0], m[1]) for m in first["metrics"]] == [("loss", 1), ("lr", 1), ("loss", 2)]
    assert first["metrics"][2][2] != first["metrics"][2][2], "NaN survives the journal"
    assert [e[1] for e in first["events"]] == [
        "status queued → running",
        "evaluation done",
        "status running → finished",
    ]
    assert first["artifacts"] == [("checkpoint", store.run_dir(run_id) / "checkpoint-2", 2)]
    assert first["telemetry"][0]["utilization"] == 97.0 and first["results"][0]["value"] == 0.5


def test_a_torn_last_line_waits_for_its_end(store):
    run_id = remote_run(store)
    recorder = JournalRecorder(store.run_dir(run_id))
    recorder.set_status(run_id, "running", pid=1, host="node-7")
    path = store.run_dir(run_id) / JOURNAL
    line = json.dumps({"op": "heartbeat", "args": {"step": 4}, "time": 100.0, "attempt": 1}).encode() + b"\n"
    complete = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(line[:20])
    assert journal.ingest(store, run_id) == 1
    assert store.get_run(run_id).journal_offset == complete and store.get_run(run_id).step == 0
    with open(path, "ab") as handle:
        handle.write(line[20:])
    assert journal.ingest(store, run_id) == 1
    assert (store.get_run(run_id).step, store.get_run(run_id).heartbeat_at) == (4, 100.0)
    assert not [e for e in store.events(run_id) if e["level"] == "error"]


def test_a_worker_after_a_killed_one_ends_its_torn_line(store):
    run_id = remote_run(store)
    path = store.run_dir(run_id) / JOURNAL
    path.write_bytes(b'{"op": "heartbeat", "ar')  # the last worker died mid-append
    recorder = JournalRecorder(store.run_dir(run_id))
    recorder.set_status(run_id, "running", pid=2, host="node-8")
    assert journal.ingest(store, run_id) == 1
    assert store.get_run(run_id).pid == 2
    assert [e["message"][:32] for e in store.events(run_id) if e["level"] == "error"] == [
        "journal line at byte 0 skipped: "
    ]


HOSTILE = [
    b"not json",
    b"[1, 2, 3]",
    b'{"op": "drop_table", "args": {}, "time": 1, "attempt": 1}',
    b'{"op": "add_metrics", "args": {"metrics": [["loss", "one", 1.0]]}, "time": 1, "attempt": 1}',
    b'{"op": "add_metrics", "args": {"metrics": 5}, "time": 1, "attempt": 1}',
    b'{"op": "add_metrics", "args": {}, "time": 1, "attempt": 1}',
    b'{"op": "add_metrics", "args": {"metrics": [["loss", 1, 1.0]]}, "time": "soon", "attempt": 1}',
    b'{"op": "add_metrics", "args": {"metrics": [["loss", 99999999999999999999999, 1.0]]}, "time": 1, "attempt": 1}',
    b'{"op": "add_event", "args": {"level": "shout", "message": "x"}, "time": 1, "attempt": 1}',
    b'{"op": "add_artifact", "args": {"kind": "checkpoint", "path": "/etc/passwd", "step": 1}, "time": 1, "attempt": 1}',
    b'{"op": "add_artifact", "args": {"kind": "checkpoint", "path": "../../x", "step": 1}, "time": 1, "attempt": 1}',
    b'{"op": "set_status", "args": {"status": "running", "fields": {"pid": "1; rm"}}, "time": 1, "attempt": 1}',
    b'{"op": "set_status", "args": {"status": "running", "fields": {"job_id": "9"}}, "time": 1, "attempt": 1}',
    b'{"op": "set_status", "args": {"status": "exploded", "fields": {}}, "time": 1, "attempt": 1}',
    b'{"op": "add_telemetry", "args": {"samples": [{"gpu": {"a": 1}}]}, "time": 1, "attempt": 1}',
    b"[" * 100_000 + b"]" * 100_000,
    b"\xff\xfe\x00 binary",
]


def test_malformed_lines_are_recorded_and_skipped_never_raised(store):
    run_id = remote_run(store)
    good = json.dumps({"op": "add_metrics", "args": {"metrics": [["loss", 1, 0.25]]}, "time": 1, "attempt": 1})
    (store.run_dir(run_id) / JOURNAL).write_bytes(b"\n".join([*HOSTILE, good.encode()]) + b"\n")
    assert journal.ingest(store, run_id) == 1
    errors = [e["message"] for e in store.events(run_id) if e["level"] == "error"]
    assert len(errors) == len(HOSTILE) and all(e.startswith("journal line at byte ") for e in errors)
    assert all(len(e) < 500 for e in errors), "a hostile line is not copied whole into the history"
    assert [(m["key"], m["step"], m["value"]) for m in store.metrics_since(run_id)] == [("loss", 1, 0.25)]
    assert store.artifacts(run_id) == [] and store.telemetry(run_id) == []
    assert store.get_run(run_id).status == "queued"


def test_a_line_longer_than_a_chunk_is_skipped(store, monkeypatch):
    monkeypatch.setattr(journal, "CHUNK_BYTES", 256)
    run_id = remote_run(store)
    recorder = JournalRecorder(store.run_dir(run_id))
    recorder.add_event(run_id, "info", "x" * 500)
    recorder.add_event(run_id, "info", "short")
    assert journal.ingest(store, run_id) == 1
    assert [e["message"][:40] for e in store.events(run_id)] == ["journal line at byte 0 skipped: a line o", "short"]


def test_a_status_the_store_refuses_is_an_event_not_an_exception(store):
    run_id = remote_run(store)
    recorder = JournalRecorder(store.run_dir(run_id))
    recorder.set_status(run_id, "running", pid=3, host="node-9")
    journal.ingest(store, run_id)
    store.set_status(run_id, "crashed", error="job 17 vanished")  # e.g. the scheduler's job state
    recorder.add_metrics(run_id, [("loss", 5, 1.0)])
    recorder.set_status(run_id, "finished", exit_code=0, step=5)
    assert journal.ingest(store, run_id) == 1
    run = store.get_run(run_id)
    assert (run.status, run.error) == ("crashed", "job 17 vanished")
    assert "cannot become finished" in store.events(run_id)[-1]["message"]


def test_a_running_run_is_restamped_by_its_worker(store):
    run_id = remote_run(store)
    store.set_status(run_id, "running", pid=None, job_id="42")  # the launcher, at submission
    journal.write_snapshot(store, run_id)
    JournalRecorder(store.run_dir(run_id)).set_status(run_id, "running", pid=77, pgid=77, host="node-3")
    assert journal.ingest(store, run_id) == 1
    run = store.get_run(run_id)
    assert (run.status, run.pid, run.pgid, run.host, run.job_id) == ("running", 77, None, "node-3", "42")


def test_lines_of_an_earlier_attempt_are_never_applied(store):
    run_id = remote_run(store)
    old = JournalRecorder(store.run_dir(run_id))
    old.set_status(run_id, "running", pid=5, host="node-1")
    journal.ingest(store, run_id)
    store.set_status(run_id, "crashed")
    store.requeue(run_id, 0)
    assert json.loads(journal.write_snapshot(store, run_id).read_text())["attempt"] == 2
    old.add_metrics(run_id, [("loss", 1, 9.0)])  # the old job, still writing
    new = JournalRecorder(store.run_dir(run_id))
    new.set_status(run_id, "running", pid=6, host="node-2")
    new.add_metrics(run_id, [("loss", 1, 1.0)])
    assert journal.ingest(store, run_id) == 2
    assert [m["value"] for m in store.metrics_since(run_id)] == [1.0]
    assert store.get_run(run_id).pid == 6


def test_the_worker_reads_the_snapshot_and_what_it_wrote(store):
    run_id = remote_run(store)
    store.add_artifact(run_id, "checkpoint", "checkpoint-4", 4)
    store.set_status(run_id, "running")
    store.set_status(run_id, "crashed")
    store.requeue(run_id, 4)
    journal.write_snapshot(store, run_id)
    recorder = JournalRecorder(store.run_dir(run_id))
    run = recorder.get_run(run_id)
    assert (run.step, run.status, run.run_config()) == (4, "queued", TINY_CONFIG)
    recorder.set_status(run_id, "running", pid=8, host="node-4")
    assert sum(e["message"].endswith("→ running") for e in recorder.events(run_id)) == 2
    recorder.add_artifact(run_id, "checkpoint", "checkpoint-6", 6)
    recorder.remove_artifacts(run_id, "checkpoint", 4)
    assert [(a["path"], a["step"]) for a in recorder.artifacts(run_id, "checkpoint")] == [
        (store.run_dir(run_id) / "checkpoint-6", 6)
    ]
    assert recorder.get_run(run_id).pid == 8
    journal.ingest(store, run_id)
    assert [(a["path"].name, a["step"]) for a in store.artifacts(run_id)] == [("checkpoint-6", 6)]


def test_the_orphan_sweep_leaves_remote_runs_alone(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    local, remote = store.create_run(TINY_CONFIG), remote_run(store)
    for run_id in (local, remote):
        store.set_status(run_id, "running", pid=pid)  # this host's name, a pid that is gone
    assert store.sweep_orphans() == [local]
    assert store.get_run(remote).status == "running"


def test_advance_ingests_remote_runs_only(store):
    remote = remote_run(store)
    JournalRecorder(store.run_dir(remote)).set_status(remote, "running", pid=9, host="node-5")
    local = store.create_run(TINY_CONFIG, placement=Placement(backend="local"))
    journal.write_snapshot(store, local)
    JournalRecorder(store.run_dir(local)).add_event(local, "info", "not from a journal run")
    launcher.set_max_parallel(store, 1)  # the remote run, once ingested as running, holds the one slot
    launcher.advance(store)
    assert store.get_run(remote).status == "running" and store.get_run(remote).pid == 9
    assert store.get_run(local).status == "queued" and store.events(local) == []


HOLDER = textwrap.dedent(
    """
    import sys
    from hybtui.runs import journal
    from hybtui.runs.store import Store
    applied = []
    def add_event(store, run_id, args):
        applied.append(args)
        if len(applied) == 50:  # hold the write transaction, its lines applied but not committed
            print("holding", flush=True)
            sys.stdin.readline()
        store.add_event(run_id, args["level"], args["message"])
    journal.OPS["add_event"] = add_event
    with Store(sys.argv[1]) as store:
        print(journal.ingest(store, sys.argv[2]))
    """
)


def event_lines(count, attempt=1):
    return b"".join(
        json.dumps(
            {"op": "add_event", "args": {"level": "info", "message": f"line {n}"}, "time": n, "attempt": attempt}
        ).encode()
        + b"\n"
        for n in range(count)
    )


def ingest_in_its_own_store(path, run_id):
    with Store(path) as store:
        return journal.ingest(store, run_id)


def test_two_concurrent_ingests_apply_each_line_once(store):
    """The second ingest waits for the first one's write lock, then reads the offset that one
    committed: it applies the lines written meanwhile, and none of the first one's."""
    run_id = remote_run(store)
    path = store.run_dir(run_id) / JOURNAL
    path.write_bytes(event_lines(100))
    first = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.path), run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert first.stdout.readline() == "holding\n"
    with open(path, "ab") as handle:
        handle.write(event_lines(150)[len(event_lines(100)) :])
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(ingest_in_its_own_store, store.path, run_id)  # blocks on the write lock
        time.sleep(0.5)
        assert not second.done()
        first.stdin.write("go\n")
        first.stdin.close()
        assert (int(first.stdout.read()), second.result(timeout=30)) == (100, 50)
    assert first.wait(timeout=30) == 0
    assert [e["message"] for e in store.events(run_id)] == [f"line {n}" for n in range(150)]


CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    from hybtui.runs import journal
    from hybtui.runs.store import Store
    applied = []
    def add_event(store, run_id, args):
        applied.append(args)
        if len(applied) == 50:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction: 49 lines applied, not committed
        store.add_event(run_id, args["level"], args["message"])
    journal.OPS["add_event"] = add_event
    with Store(sys.argv[1]) as store:
        journal.ingest(store, sys.argv[2])
    """
)


def test_a_kill_mid_ingest_applies_nothing_twice_and_loses_nothing(store):
    run_id = remote_run(store)
    (store.run_dir(run_id) / JOURNAL).write_bytes(event_lines(100))
    crashed = subprocess.run([sys.executable, "-c", CRASHER, str(store.path), run_id], check=False)
    assert crashed.returncode == -signal.SIGKILL
    assert store.events(run_id) == [] and not store.get_run(run_id).journal_offset
    assert journal.ingest(store, run_id) == 100
    assert [e["message"] for e in store.events(run_id)] == [f"line {n}" for n in range(100)]


def test_worker_command_names_the_run_directory(store):
    run_id = remote_run(store)
    command = journal.worker_command(store, run_id)
    assert command == [sys.executable, "-m", "hybtui", "worker", run_id, "--journal", str(store.run_dir(run_id))]
