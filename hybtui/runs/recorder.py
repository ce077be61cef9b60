"""What a worker on another host reports through: its run's journal, never the store.

`JournalRecorder` has the store methods a worker uses (`hybtui.runs.worker`). Each write is
one line of ``journal.jsonl`` — ``{"op", "args", "time", "attempt"}`` — written whole with
O_APPEND and fsynced: lines are already batches (metrics a second at a time, a heartbeat
every few seconds, a status change), and an NFS client only sends what is synced. Reads
(the run, its events, its checkpoints) answer from ``snapshot.json`` plus what this recorder
wrote. `hybtui.runs.journal` writes the snapshot and ingests the journal into the store.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hybtui.errors import HybtuiError, InvalidTransition
from hybtui.runs.records import Run, RunStatus, run_status

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
SNAPSHOT = "snapshot.json"


def read_snapshot(directory: Path) -> dict[str, Any] | None:
    """The run directory's snapshot, or None where there is none or it cannot be read."""
    try:
        snapshot = json.loads((directory / SNAPSHOT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    valid = isinstance(snapshot, dict) and isinstance(snapshot.get("attempt"), int)
    return snapshot if valid and isinstance(snapshot.get("run"), dict) else None


class JournalRecorder:
    """A remote worker's side of the store, for one run: appends to its journal. Thread-safe
    (the heartbeat thread shares it)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        snapshot = read_snapshot(self.run_dir)
        if snapshot is None:
            raise HybtuiError(f"no readable {SNAPSHOT} in {self.run_dir}: a remote worker starts from one")
        self.attempt: int = snapshot["attempt"]
        self._row: dict[str, Any] = snapshot["run"]
        self._events: list[dict[str, Any]] = list(snapshot.get("events") or [])
        self._artifacts: list[dict[str, Any]] = list(snapshot.get("artifacts") or [])
        self._lock = threading.Lock()
        self._fd = os.open(self.run_dir / JOURNAL, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        # A line left torn (an append failed part-way, a killed worker) is ended before the
        # next one, so that only it is lost.
        size = os.fstat(self._fd).st_size
        self._torn = size > 0 and os.pread(self._fd, 1, size - 1) != b"\n"

    def close(self) -> None:
        os.close(self._fd)

    def _append(self, op: str, **args: Any) -> float:
        now = time.time()
        line = json.dumps({"op": op, "args": args, "time": now, "attempt": self.attempt}).encode() + b"\n"
        with self._lock:
            data = (b"\n" if self._torn else b"") + line
            self._torn = True
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
            self._torn = False
        return now

    def _check(self, run_id: str) -> None:
        if run_id != self._row["id"]:
            raise HybtuiError(f"this journal records run {self._row['id']}, not {run_id}")

    # -- reads: the snapshot and what was written since ---------------------------------

    def get_run(self, run_id: str) -> Run:
        self._check(run_id)
        return Run.from_row(self._row)

    def events(self, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        self._check(run_id)
        return [event for event in self._events if event["id"] > after_id]

    def artifacts(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        self._check(run_id)
        chosen = [a for a in self._artifacts if kind is None or a["kind"] == kind]
        return [{**a, "path": self.run_dir / a["path"]} for a in chosen]

    # -- writes: one journal line each -------------------------------------------------

    def set_status(self, run_id: str, status: str, **fields: Any) -> Run:
        """Under the store's transitions; a worker may announce itself on a run already
        running (the launcher marks it so; a scheduler may restart the job)."""
        self._check(run_id)
        status = run_status(status)
        current = RunStatus(self._row["status"])
        if status not in current.next and not status == current == RunStatus.RUNNING:
            raise InvalidTransition(f"run {run_id} is {current} and cannot become {status}")
        now = self._append("set_status", status=str(status), fields=fields)
        self._row.update(fields, status=str(status))
        level = "error" if status in ("failed", "crashed") else "info"
        self._remember_event(level, f"status {current} → {status}", now)
        return Run.from_row(self._row)

    def adopt(self, run_id: str, pid: int, pgid: int, host: str) -> None:
        """Rank 0 of a torchrun group takes the run over from torchrun: the journal's
        ``running`` line for a run already running records the new process."""
        self.set_status(run_id, "running", pid=pid, pgid=pgid, host=host)

    def heartbeat(self, run_id: str, step: int | None = None) -> None:
        self._check(run_id)
        self._append("heartbeat", step=None if step is None else int(step))

    def add_metrics(self, run_id: str, metrics: Iterable[tuple[str, int, float]]) -> None:
        self._check(run_id)
        rows = [[key, int(step), float(value)] for key, step, value in metrics]
        if rows:
            self._append("add_metrics", metrics=rows)

    def add_results(self, run_id: str, rows: Iterable[Any], step: int | None, final: bool) -> None:
        self._check(run_id)
        records = [row.as_dict() if hasattr(row, "as_dict") else dict(row) for row in rows]
        if records:
            self._append("add_results", rows=records, step=step, final=bool(final))

    def add_event(self, run_id: str, level: str, message: str) -> int | None:
        """As the store's: never raises on trouble with the journal (logging must not fail a run)."""
        self._check(run_id)
        try:
            now = self._append("add_event", level=level, message=str(message))
        except OSError as exc:
            log.warning("could not record event for run %s in %s: %s", run_id, self.run_dir / JOURNAL, exc)
            return None
        return self._remember_event(level, str(message), now)

    def add_artifact(self, run_id: str, kind: str, path: str | Path, step: int | None = None) -> None:
        """A file of the run directory, recorded relative to it (the store's host may mount
        the shared filesystem elsewhere)."""
        self._check(run_id)
        resolved = (self.run_dir / path).resolve()
        relative = str(resolved.relative_to(self.run_dir.resolve()))
        now = self._append("add_artifact", kind=kind, path=relative, step=step)
        with self._lock:
            number = max((a["id"] for a in self._artifacts), default=0) + 1
            self._artifacts.append({"id": number, "kind": kind, "path": relative, "step": step, "time": now})

    def remove_artifacts(self, run_id: str, kind: str, step: int) -> None:
        self._check(run_id)
        self._append("remove_artifacts", kind=kind, step=int(step))
        with self._lock:
            self._artifacts = [a for a in self._artifacts if not (a["kind"] == kind and a["step"] == step)]

    def add_telemetry(self, run_id: str, samples: Iterable[dict[str, Any]]) -> None:
        self._check(run_id)
        rows = [dict(sample) for sample in samples]
        if rows:
            self._append("add_telemetry", samples=rows)

    def _remember_event(self, level: str, message: str, now: float) -> int:
        with self._lock:
            number = max((e["id"] for e in self._events), default=0) + 1
            self._events.append({"id": number, "time": now, "level": level, "message": message})
        return number
