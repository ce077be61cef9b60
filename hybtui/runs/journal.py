"""The hand-over between a worker on another host and the store: the run's journal.

A Slurm job may run on a host that shares only a network filesystem with the store. SQLite's
WAL needs shared memory on one host and POSIX locks over NFS are unreliable, so such a worker
never opens ``hybtui.db``. It reads what it needs from ``snapshot.json`` in its run directory
(`write_snapshot`) and appends what it reports to ``journal.jsonl`` there, one JSON object a
line, fsynced (`JournalRecorder`). Whoever opens the store on its host ingests the journal
(`ingest`, from every `launcher.advance`), as offline runs of experiment trackers are synced:
new complete lines go through the store's own rules in one transaction with the new
``journal_offset``, so a crash applies nothing twice and loses nothing.

Each line carries the attempt of the snapshot its worker read: a line of an attempt the
store has moved past (a requeued run whose old job still writes) is skipped, never applied.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybtui.errors import HybtuiError
from hybtui.runs.recorder import JOURNAL, SNAPSHOT, JournalRecorder, read_snapshot
from hybtui.runs.run_data import LEVELS
from hybtui.runs.store import Store

__all__ = ["JOURNAL", "SNAPSHOT", "JournalRecorder", "ingest", "ingest_all", "worker_command", "write_snapshot"]

log = logging.getLogger(__name__)

#: The most of a journal one transaction reads; a line longer than this is refused as malformed.
CHUNK_BYTES = 4 << 20
#: What a hostile or damaged line can raise while it is applied: it is recorded and skipped.
#: Database trouble (a full disk, a lock) is not among them: it rolls the whole ingest back.
MALFORMED = (
    HybtuiError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RecursionError,
    OverflowError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
)
#: The run columns a journal's status line may set, and their types. Its process group is
#: dropped: a remote worker's means nothing on the store's host, and nothing here may signal it.
STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "pid": (int,),
    "pgid": (int,),
    "host": (str,),
    "exit_code": (int,),
    "error": (str,),
    "step": (int,),
}


def write_snapshot(store: Store, run_id: str) -> Path:
    """Write ``snapshot.json`` into the run directory before its worker is submitted: the run
    record (configuration, the resume step ``step`` as a requeue left it), its history and
    checkpoint records (what the worker reads back), and the attempt: one more than the
    last snapshot's, so lines a previous attempt's worker still appends are told apart."""
    run = store.get_run(run_id)
    directory = store.run_dir(run.id)
    last = read_snapshot(directory)
    row = {key: run[key] for key in run.KEYS if key != "config_error"}
    row["config"] = store._rows("SELECT config FROM runs WHERE id = ?", [run.id])[0]["config"]
    artifacts = store._rows("SELECT id, kind, path, step, time FROM artifacts WHERE run_id = ? ORDER BY id", [run.id])
    snapshot = {
        "attempt": (last["attempt"] if last else 0) + 1,
        "run": {**row, "status": str(run.status)},
        "events": store.events(run.id),
        "artifacts": artifacts,
        "written_at": time.time(),
    }
    path = directory / SNAPSHOT
    staged = path.with_suffix(".tmp")
    with open(staged, "w", encoding="utf-8") as handle:
        json.dump(snapshot, handle)
        handle.flush()
        os.fsync(handle.fileno())
    staged.replace(path)
    return path


def worker_command(store: Store, run_id: str) -> list[str]:
    """The argv of a remote worker: it reads the snapshot, appends to the journal, and never
    opens the store (the run directory is on the filesystem both hosts share)."""
    directory = store.run_dir(run_id).absolute()
    return [sys.executable, "-m", "hybtui", "worker", directory.name, "--journal", str(directory)]


def ingest_all(store: Store) -> int:
    """Ingest the journals of the remote runs that are queued or running; the lines applied.
    Cheap when nothing changed: one stat per such run."""
    rows = store._rows(
        "SELECT id, journal_offset FROM runs WHERE ifnull(backend, 'local') != 'local' "
        "AND status IN ('queued', 'running') ORDER BY created_at"
    )
    applied = 0
    for row in rows:
        try:
            if (store.path / "runs" / row["id"] / JOURNAL).stat().st_size > (row["journal_offset"] or 0):
                applied += ingest(store, row["id"])
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("journal of run %s not ingested: %s", row["id"], exc)
    return applied


def ingest(store: Store, run_id: str) -> int:
    """Apply the journal's new complete lines to the store; the number applied.

    Each chunk is one write transaction that re-reads ``journal_offset`` under the write lock,
    applies its lines and moves the offset past them: a crash applies none of them, and a
    concurrent ingest finds them taken. A torn last line (no newline yet) waits for the next
    ingest; a malformed one is recorded as an error event and skipped."""
    run = store.get_run(run_id)
    directory = store.path / "runs" / run.id
    snapshot = read_snapshot(directory)
    if snapshot is None or not (directory / JOURNAL).is_file():
        return 0
    applied = 0
    while True:
        count, more = _ingest_chunk(store, run.id, directory / JOURNAL, snapshot["attempt"])
        applied += count
        if not more:
            return applied


def _ingest_chunk(store: Store, run_id: str, journal: Path, attempt: int) -> tuple[int, bool]:
    """Ingest what follows the offset, up to CHUNK_BYTES; (lines applied, whether more follows)."""
    with store._write(), open(journal, "rb") as handle:
        offset = store._rows("SELECT journal_offset FROM runs WHERE id = ?", [run_id])[0]["journal_offset"] or 0
        handle.seek(offset)
        data = handle.read(CHUNK_BYTES)
        end = data.rfind(b"\n") + 1
        if end == 0:  # a torn last line, or one longer than a chunk
            skip = _line_end(handle, offset + len(data)) if len(data) == CHUNK_BYTES else None
            if skip is None:
                return 0, False
            _refuse(store, run_id, offset, f"a line of {skip - offset} bytes (at most {CHUNK_BYTES})")
            _set_offset(store, run_id, skip)
            return 0, True
        applied, position = 0, offset
        for line in data[:end].split(b"\n")[:-1]:
            applied += _apply_line(store, run_id, line, position, attempt)
            position += len(line) + 1
        _set_offset(store, run_id, offset + end)
        return applied, len(data) == CHUNK_BYTES


def _line_end(handle: Any, position: int) -> int | None:
    """The offset just past the newline at or after ``position``; None before one is written."""
    handle.seek(position)
    while chunk := handle.read(CHUNK_BYTES):
        found = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
    return None


def _set_offset(store: Store, run_id: str, offset: int) -> None:
    store.db.execute("UPDATE runs SET journal_offset = ? WHERE id = ?", [offset, run_id])


def _apply_line(store: Store, run_id: str, line: bytes, position: int, attempt: int) -> int:
    """Apply one line in its own savepoint (1), or record why not and skip it (0)."""
    if not line.strip():
        return 0
    store.db.execute("SAVEPOINT journal_line")
    try:
        entry = json.loads(line)
        if not isinstance(entry, dict) or entry.get("op") not in OPS:
            raise ValueError(f"not an operation: {line[:80]!r}")
        if entry.get("attempt") != attempt:
            store.db.execute("RELEASE journal_line")
            return 0  # an earlier attempt's worker: the store has moved past it
        when = entry["time"]
        if not isinstance(when, (int, float)) or not math.isfinite(when):
            raise ValueError(f"time must be a number, not {when!r}")
        with store.stamped(float(when)):
            OPS[entry["op"]](store, run_id, entry["args"])
    except MALFORMED as exc:
        store.db.execute("ROLLBACK TO journal_line")
        store.db.execute("RELEASE journal_line")
        _refuse(store, run_id, position, f"{type(exc).__name__}: {str(exc)[:300]}")
        return 0
    store.db.execute("RELEASE journal_line")
    return 1


def _refuse(store: Store, run_id: str, position: int, why: str) -> None:
    store._insert_event(run_id, "error", f"journal line at byte {position} skipped: {why}", time.time())


def _set_status(store: Store, run_id: str, args: dict[str, Any]) -> None:
    """A status change, under the store's rules; a worker announcing itself on a run the
    launcher already marked running (or on a job the scheduler restarted) records its process."""
    fields = _checked(args["fields"], STATUS_FIELDS)
    fields.pop("pgid", None)
    run = store.get_run(run_id)
    if args["status"] == "running" and run.status == "running":
        store.db.table("runs").update(run.id, {**fields, "pgid": None, "heartbeat_at": store._now()})
        worker = f"pid {fields.get('pid')} on {fields.get('host')}"
        store._insert_event(run.id, "info", f"worker {worker} started", store._now())
    else:
        store.set_status(run.id, args["status"], **fields)  # a pid given leaves no process group


def _checked(fields: Any, types: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    if not isinstance(fields, dict):
        raise TypeError(f"fields must be an object, not {fields!r}")
    for key, value in fields.items():
        if key not in types or not (value is None or isinstance(value, types[key])) or isinstance(value, bool):
            raise ValueError(f"a journal cannot set {key!r} to {value!r}")
    return fields


def _add_artifact(store: Store, run_id: str, args: dict[str, Any]) -> None:
    """Only files inside the run directory: a journal must never point the store (and a prune
    that deletes what it records) at another file."""
    directory = (store.path / "runs" / run_id).resolve()
    path = Path(args["path"])
    if path.is_absolute() or not (directory / path).resolve().is_relative_to(directory):
        raise ValueError(f"artifact path {args['path']!r} is not inside the run directory")
    store.add_artifact(run_id, args["kind"], path, args["step"])


def _add_event(store: Store, run_id: str, args: dict[str, Any]) -> None:
    if args["level"] not in LEVELS or not isinstance(args["message"], str):
        raise ValueError(f"not an event: {args!r}"[:200])
    store.add_event(run_id, args["level"], args["message"])


OPS: dict[str, Callable[[Store, str, dict[str, Any]], object]] = {
    "set_status": _set_status,
    "heartbeat": lambda store, run_id, args: store.heartbeat(run_id, args["step"]),
    "add_metrics": lambda store, run_id, args: store.add_metrics(run_id, args["metrics"]),
    "add_results": lambda store, run_id, args: store.add_results(run_id, args["rows"], args["step"], args["final"]),
    "add_event": _add_event,
    "add_artifact": _add_artifact,
    "remove_artifacts": lambda store, run_id, args: store.remove_artifacts(run_id, args["kind"], args["step"]),
    "add_telemetry": lambda store, run_id, args: store.add_telemetry(run_id, args["samples"]),
}
