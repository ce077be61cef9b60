"""The run store on real SQLite files: life cycle, incremental reads, real writer
processes racing a polling reader, the orphan sweep, migrations and bad input."""

import json
import logging
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.runs import database
from hybtui.runs import store as store_module
from hybtui.runs.records import is_stalled
from hybtui.runs.schema import SCHEMA_VERSION
from hybtui.runs.store import Store, store_path

REPO = Path(__file__).resolve().parents[1]
CONFIG = RunConfig(steps=50)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store") as opened:
        yield opened


def result(value):
    return {
        "bench": "xquad-r",
        "setting": "cross",
        "query_lang": "de",
        "doc_lang": "en",
        "metric": "ap",
        "value": value,
        "seen": "seen",
    }


# -- runs -------------------------------------------------------------------------------


def test_store_path_argument_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HYBTUI_STORE", str(tmp_path / "env"))
    assert store_path(tmp_path / "arg") == tmp_path / "arg"
    assert store_path(None) == tmp_path / "env"
    monkeypatch.delenv("HYBTUI_STORE")
    assert store_path(None) == Path("store")


def test_connection_uses_wal_a_busy_timeout_and_foreign_keys(store):
    def pragma(name):
        return store.db.execute(f"PRAGMA {name}").fetchone()[0]

    assert store.journal_mode == pragma("journal_mode") == "wal"
    assert pragma("busy_timeout") == 10_000
    assert pragma("synchronous") == 1  # NORMAL: durable at checkpoints, no fsync per commit in WAL
    assert pragma("foreign_keys") == 1
    assert pragma("user_version") == SCHEMA_VERSION


def test_create_get_list_and_delete(store):
    first = store.create_run(CONFIG, name="baseline")
    second = store.create_run(CONFIG.replace(alpha=0.2), parent_id=first)
    assert first != second and len(first) == len("YYMMDD-HHMMSS-xxxx")

    run = store.get_run(second)
    assert run["status"] == "queued" and run["parent_id"] == first and run["total_steps"] == 50
    assert RunConfig.from_dict(run["config"]) == CONFIG.replace(alpha=0.2)
    saved = json.loads((store.run_dir(second) / "config.json").read_text())
    assert RunConfig.from_dict(saved) == CONFIG.replace(alpha=0.2)
    assert store.get_run(first)["name"] == "baseline"

    assert [r["id"] for r in store.list_runs()] == [second, first]  # newest first
    assert [r["id"] for r in store.list_runs(limit=1)] == [second]
    store.set_status(first, "cancelled")
    assert [r["id"] for r in store.list_runs(status="cancelled")] == [first]

    store.add_metrics(first, [("loss", 1, 0.5)])
    store.add_event(first, "info", "hello")
    directory = store.run_dir(first)
    store.delete_run(first)
    assert not directory.exists()
    assert [r["id"] for r in store.list_runs()] == [second]
    for table in ("metrics", "events", "runs"):
        assert (
            store.db.execute(
                f"SELECT count(*) FROM {table} WHERE {'id' if table == 'runs' else 'run_id'} = ?", [first]
            ).fetchone()[0]
            == 0
        )


def test_unique_prefix_finds_a_run_and_an_ambiguous_one_is_refused(store):
    first = store.create_run(CONFIG)
    assert store.get_run(first[:6])["id"] == first
    others = [store.create_run(CONFIG) for _ in range(2)]
    assert [store.get_run(run_id)["id"] for run_id in others] == others
    with pytest.raises(HybtuiError, match=f"'{first[:2]}' is ambiguous: it matches .*give more characters"):
        store.get_run(first[:2])  # the year: all three


def test_status_transitions_stamp_times_and_refuse_the_rest(store):
    run_id = store.create_run(CONFIG)
    for bad in ("finished", "failed", "crashed", "queued"):
        with pytest.raises(HybtuiError, match="is queued and cannot become"):
            store.set_status(run_id, bad)

    run = store.set_status(run_id, "running", pid=os.getpid())
    assert run["started_at"] and run["heartbeat_at"] and run["ended_at"] is None
    assert run["host"] == store_module.this_host() and run["pid"] == os.getpid()
    run = store.set_status(run_id, "crashed", error="boom")
    assert run["ended_at"] >= run["started_at"] and run["error"] == "boom"

    run = store.set_status(run_id, "queued")  # resume, same run
    assert run["ended_at"] is None and run["error"] is None and run["pid"] is None
    store.set_status(run_id, "running")
    store.set_status(run_id, "cancelled")
    store.set_status(run_id, "running")
    run = store.set_status(run_id, "finished", exit_code=0)
    assert run["exit_code"] == 0 and run["ended_at"] is not None
    with pytest.raises(HybtuiError, match="is finished and cannot become running; allowed: none"):
        store.set_status(run_id, "running")

    other = store.create_run(CONFIG)
    store.set_status(other, "cancelled")  # queued → cancelled
    store.set_status(other, "running")
    store.set_status(other, "failed", error="Traceback …")
    with pytest.raises(HybtuiError, match="is failed and cannot become queued"):
        store.set_status(other, "queued")
    with pytest.raises(HybtuiError, match="unknown run status"):
        store.set_status(other, "paused")
    with pytest.raises(HybtuiError, match="cannot set colour"):
        store.set_status(other, "cancelled", colour="red")

    messages = [e["message"] for e in store.events(run_id)]
    assert messages[:2] == ["status queued → running", "status running → crashed"]


# -- writer and reader sides -------------------------------------------------------------


def test_incremental_metric_reads_return_only_new_rows(store):
    run_id = store.create_run(CONFIG)
    store.add_metrics(run_id, [("loss", step, 1.0 / step) for step in range(1, 6)])
    first = store.metrics_since(run_id)
    assert [(r["key"], r["step"]) for r in first] == [("loss", s) for s in range(1, 6)]

    store.add_metrics(run_id, [("loss", 6, 0.1), ("lr", 6, 3e-5), ("grad_norm", 6, float("nan"))])
    new = store.metrics_since(run_id, after_id=first[-1]["id"])
    assert [(r["key"], r["step"]) for r in new] == [("loss", 6), ("lr", 6), ("grad_norm", 6)]
    assert math.isnan(new[-1]["value"])  # SQLite has no NaN; it comes back as one
    assert store.metrics_since(run_id, after_id=new[-1]["id"]) == []
    assert [r["key"] for r in store.metrics_since(run_id, keys=["lr"])] == ["lr"]

    latest = store.latest_metrics(run_id)
    assert set(latest) == {"loss", "lr", "grad_norm"}
    assert (latest["loss"]["step"], latest["loss"]["value"]) == (6, 0.1)


def test_results_events_artifacts_round_trip(store):
    from hybtui.results import ResultRow

    run_id = store.create_run(CONFIG)
    store.add_results(run_id, [result(0.25)], step=100, final=False)
    store.add_results(
        run_id, [result(0.5), ResultRow("xquad-r", "mono", "en", "en", "ap", 0.75, None)], step=200, final=True
    )
    final = store.results(run_id)
    assert [(r["value"], r["step"], r["final"]) for r in final] == [(0.5, 200, True), (0.75, 200, True)]
    assert final[1]["seen"] is None and final[1]["setting"] == "mono"
    assert [r["final"] for r in store.results(run_id, final_only=False)] == [False, True, True]

    first = store.add_event(run_id, "warning", "loss spiked")
    store.add_event(run_id, "info", "checkpoint saved")
    assert [e["message"] for e in store.events(run_id, after_id=first)] == ["checkpoint saved"]

    checkpoint = store.run_dir(run_id) / "checkpoint-200"
    store.add_artifact(run_id, "checkpoint", checkpoint, step=200)
    assert store.db.execute("SELECT path FROM artifacts").fetchone()[0] == "checkpoint-200"
    assert [a["path"] for a in store.artifacts(run_id, kind="checkpoint")] == [checkpoint]

    store.heartbeat(run_id, step=17)
    assert store.get_run(run_id)["step"] == 17


def test_event_logging_never_raises_on_database_errors(store, caplog):
    with caplog.at_level(logging.WARNING, logger="hybtui.runs"):
        assert store.add_event("no-such-run", "info", "lost") is None  # foreign key refused
    assert "could not record event" in caplog.text


# -- concurrency -------------------------------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from hybtui.runs.store import Store
path, run_id, key, rows, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with Store(path) as store:
    print("ready", flush=True)
    while not (Path(path) / "go").exists():
        time.sleep(0.005)
    start = time.perf_counter()
    for first in range(0, rows, batch):
        store.add_metrics(run_id, [(key, step, float(step)) for step in range(first, first + batch)])
        store.heartbeat(run_id, step=first)
        if first % (10 * batch) == 0:
            store.add_event(run_id, "info", f"{key} at {first}")
    print(time.perf_counter() - start, flush=True)
"""


def run_writers(path: Path, run_id: str, writers: int, rows: int = 2000, batch: int = 20):
    """Start writer processes together and poll metrics_since until they finish.

    Returns the rows the reader saw and each writer's elapsed seconds."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), run_id, f"w{i}", str(rows), str(batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for i in range(writers)
    ]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
    seen, last = [], 0
    with Store(path) as reader:
        (path / "go").touch()
        while True:
            done = all(proc.poll() is not None for proc in procs)
            new = reader.metrics_since(run_id, after_id=last)
            if new:
                last = new[-1]["id"]
                seen += new
            if done:
                break
            time.sleep(0.002)
    elapsed = []
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0 and err == "", err
        elapsed.append(float(out.strip()))
    (path / "go").unlink()
    return seen, elapsed


def test_four_writer_processes_and_a_polling_reader_lose_nothing(tmp_path):
    path = tmp_path / "store"
    with Store(path) as store:
        run_id = store.create_run(CONFIG, status="running")
    seen, elapsed = run_writers(path, run_id, writers=4)

    ids = [row["id"] for row in seen]
    assert ids == sorted(set(ids)), "the reader saw a row twice or out of order"
    assert len(seen) == 4 * 2000
    for i in range(4):
        assert [row["step"] for row in seen if row["key"] == f"w{i}"] == list(range(2000))
    with Store(path) as store:
        assert store.db.execute("SELECT count(*) FROM metrics").fetchone()[0] == 8000
        assert len(store.events(run_id)) == 4 * 10  # each writer's every 10th batch
    print(f"\n4 writers: {8000 / max(elapsed):,.0f} rows/s overall")


# -- the orphan sweep and stalled runs ---------------------------------------------------


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_killed_worker_is_swept_into_crashed_when_the_store_is_opened(tmp_path):
    path = tmp_path / "store"
    proc = sleeper()
    with Store(path) as store:
        run_id = store.create_run(CONFIG)
        store.set_status(run_id, "running", pid=proc.pid)
        elsewhere = store.create_run(CONFIG)  # a dead pid on another host is not ours to judge
        store.set_status(elsewhere, "running", pid=proc.pid, host="another-machine")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    with Store(path) as store:
        assert store.swept == [run_id]
        run = store.get_run(run_id)
        assert run["status"] == "crashed" and run["ended_at"] is not None
        assert f"worker process {proc.pid}" in run["error"]
        last = store.events(run_id)[-1]
        assert last["level"] == "error" and "marked crashed" in last["message"]
        assert store.get_run(elsewhere)["status"] == "running"
        assert store.sweep_orphans() == []


def test_a_live_worker_with_an_old_heartbeat_is_stalled(store):
    proc = sleeper()
    try:
        run_id = store.create_run(CONFIG)
        store.set_status(run_id, "running", pid=proc.pid)
        run = store.get_run(run_id)
        assert not is_stalled(run)
        assert is_stalled(run, now=run["heartbeat_at"] + 120)
        assert store.sweep_orphans() == []  # alive: stalled, not crashed
        store.heartbeat(run_id)
        assert not is_stalled(store.get_run(run_id), now=run["heartbeat_at"] + 30)
    finally:
        proc.kill()
        proc.wait()
    assert not is_stalled(store.get_run(run_id), now=time.time() + 120)  # dead: the sweep's business


# -- migrations --------------------------------------------------------------------------

V1 = """
CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, config TEXT NOT NULL, status TEXT NOT NULL,
  created_at REAL NOT NULL, started_at REAL, ended_at REAL, pid INTEGER, pgid INTEGER, host TEXT,
  heartbeat_at REAL, exit_code INTEGER, error TEXT, parent_id TEXT, step INTEGER DEFAULT 0,
  total_steps INTEGER);
CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL, step INTEGER NOT NULL, value REAL, time REAL NOT NULL);
CREATE TABLE results (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER,
  bench TEXT NOT NULL, setting TEXT NOT NULL, query_lang TEXT NOT NULL, doc_lang TEXT NOT NULL,
  metric TEXT NOT NULL, value REAL, seen TEXT, final INTEGER NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), time REAL NOT NULL,
  level TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE artifacts (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), kind TEXT NOT NULL,
  path TEXT NOT NULL, step INTEGER, time REAL NOT NULL);
INSERT INTO runs (id, config, status, created_at, step)
  VALUES ('240101-000000-abcd', '{"steps": 5}', 'finished', 1.0, 5);
INSERT INTO metrics (run_id, key, step, value, time) VALUES ('240101-000000-abcd', 'loss', 5, 0.25, 2.0);
INSERT INTO events (run_id, time, level, message) VALUES ('240101-000000-abcd', 2.0, 'info', 'done');
PRAGMA user_version = 1;
"""


def columns(db_path: Path) -> dict:
    conn = sqlite3.connect(db_path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    found = {t: [(c[1], c[2], c[3]) for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    conn.close()
    return found


def test_a_version_1_database_is_migrated_with_its_rows(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    conn = sqlite3.connect(old / "hybtui.db")
    conn.executescript(V1)
    conn.close()

    with Store(old) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        indexes = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"idx_metrics_run_id", "idx_runs_status_created_at", "idx_results_headline"} <= indexes
        assert store.list_grids() == [] and store.run_overview()[0]["figures"] == {}
        assert store.get_run("240101")["status"] == "finished"
        assert [(m["key"], m["value"]) for m in store.metrics_since("240101-000000-abcd")] == [("loss", 0.25)]
        assert [e["message"] for e in store.events("240101-000000-abcd")] == ["done"]
    with Store(tmp_path / "fresh"):
        pass
    assert columns(old / "hybtui.db") == columns(tmp_path / "fresh" / "hybtui.db")


def test_a_database_from_a_newer_hybtui_is_refused(tmp_path):
    with Store(tmp_path) as store:
        store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(HybtuiError, match="written by a newer hybtui"):
        Store(tmp_path)


# -- bad input ---------------------------------------------------------------------------


def test_a_store_path_under_a_regular_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HybtuiError, match=re.escape(f"cannot use {blocker}/store as the run store")):
        Store(blocker / "store")
    with pytest.raises(HybtuiError, match=re.escape(f"cannot use {blocker} as the run store")):
        Store(blocker)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_a_read_only_store_directory_is_refused(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(HybtuiError, match="not writable"):
            Store(tmp_path)
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.parametrize("content", [b"not a database\n" * 200, b"{}"])
def test_a_hybtui_db_that_is_not_sqlite_is_refused_and_left_alone(tmp_path, content):
    (tmp_path / "hybtui.db").write_bytes(content)
    with pytest.raises(HybtuiError, match="hybtui.db is not a SQLite database"):
        Store(tmp_path)
    assert (tmp_path / "hybtui.db").read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hybtui.db"]


def test_unknown_runs_and_bad_rows_are_explained(store):
    for call in (
        lambda: store.get_run("nope"),
        lambda: store.run_dir("nope"),
        lambda: store.set_status("nope", "running"),
        lambda: store.delete_run("nope"),
        lambda: store.heartbeat("nope"),
        lambda: store.add_metrics("nope", [("loss", 1, 0.5)]),
        lambda: store.create_run(CONFIG, parent_id="nope"),
    ):
        with pytest.raises(HybtuiError, match="no run with id 'nope'.*hybtui runs ls"):
            call()
    run_id = store.create_run(CONFIG)
    with pytest.raises(HybtuiError, match=r"a metric must be \(key, step, value\)"):
        store.add_metrics(run_id, [("loss", "three", 0.5)])
    with pytest.raises(HybtuiError, match="metric key must be non-empty text"):
        store.add_metrics(run_id, [("", 1, 0.5)])
    with pytest.raises(HybtuiError, match="lacks metric, value"):
        store.add_results(
            run_id, [{"bench": "x", "setting": "mono", "query_lang": "en", "doc_lang": "en"}], step=1, final=True
        )
    with pytest.raises(HybtuiError, match="event level must be one of"):
        store.add_event(run_id, "loud", "hi")
    with pytest.raises(HybtuiError, match="unknown run status"):
        store.list_runs(status="done")
    with pytest.raises(HybtuiError, match="starts as queued or running"):
        store.create_run(CONFIG, status="finished")
    assert store.metrics_since(run_id) == []  # nothing half-written


def test_a_running_run_cannot_be_deleted(store):
    run_id = store.create_run(CONFIG, status="running")
    with pytest.raises(HybtuiError, match=f"run {run_id} is running .*hybtui runs cancel {run_id}"):
        store.delete_run(run_id)
    assert store.get_run(run_id)["status"] == "running" and store.run_dir(run_id).is_dir()


# -- WAL fallback ------------------------------------------------------------------------


def test_without_wal_the_store_falls_back_to_the_rollback_journal(tmp_path, monkeypatch):
    def refuse_wal(conn):  # what SQLite answers on a filesystem without shared memory
        return conn.execute("PRAGMA journal_mode").fetchone()[0]

    monkeypatch.setattr(database, "request_wal", refuse_wal)
    with Store(tmp_path) as store:
        assert store.journal_mode == "delete"
        run_id = store.create_run(CONFIG)
        store.add_metrics(run_id, [("loss", 1, 0.5)])
        assert [m["value"] for m in store.metrics_since(run_id)] == [0.5]
    assert not (tmp_path / "hybtui.db-wal").exists()
    with Store(tmp_path) as reopened:
        assert reopened.get_run(run_id)["status"] == "queued"


def test_run_overview_has_each_runs_final_headline_figures_only(store):
    from hybtui.results import ResultRow

    old = store.create_run(RunConfig(model="tiny", sampler="mono", train=("mlqa-r:en,de",)), name="old")
    new = store.create_run(RunConfig(steps=0), name="new")
    rows = [
        ResultRow("xquad-r", "mono", "avg", "avg", "map", 0.7, None),
        ResultRow("xquad-r", "mono", "avg", "avg", "map", 0.9, "seen"),  # a seen group: not a headline
        ResultRow("xquad-r", "mono", "en", "en", "map", 0.8, "seen"),  # one language: not a headline
        ResultRow("xquad-r", "multi", "avg", "all", "rank_distance", math.nan, None),
        ResultRow("xquad-r", "mono", "avg", "avg", "recall@1", 0.5, None),
    ]  # not a shown metric
    store.add_results(old, rows, step=1000, final=True)
    store.add_results(old, [ResultRow("mlqa-r", "mono", "avg", "avg", "map", 0.1, None)], step=10, final=False)
    overview = store.run_overview()
    assert [r["id"] for r in overview] == [new, old]
    first, second = overview
    assert first["figures"] == {} and first["total_steps"] == 0
    assert (second["model"], second["sampler"], second["train"]) == ("tiny", "mono", ("mlqa-r:en,de",))
    figures = second["figures"]
    assert set(figures) == {"xquad-r"} and figures["xquad-r"][("mono", "map")] == 0.7
    assert math.isnan(figures["xquad-r"][("multi", "rank_distance")]) and len(figures["xquad-r"]) == 2
