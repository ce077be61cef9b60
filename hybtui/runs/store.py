"""The run store: every run in one SQLite file (``<store>/hybtui.db``), shared by one UI and
many workers, plus ``<store>/runs/<id>/`` for a run's config, worker log and checkpoints.

Concurrency, after harlequin's query log: WAL (readers and the writer never block each
other), a busy timeout so writers queue, ``BEGIN IMMEDIATE`` for every write (a deferred
transaction that reads and then writes can fail at once in WAL, whatever the timeout), and
short transactions. Each process (and thread) opens its own ``Store``. Times are UNIX seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError, InvalidTransition, RunNotFound, StoreCorrupt, StoreError, StoreReadOnly
from hybtui.runs import database
from hybtui.runs.database import DB_NAME, quick_check, raise_if_corrupt, store_error
from hybtui.runs.grid_records import GridRecords
from hybtui.runs.jobs import JobRecords
from hybtui.runs.outcome import read_outcome
from hybtui.runs.records import Placement, Run, RunStatus, pid_alive, run_status, this_host
from hybtui.runs.run_data import RunData
from hybtui.runs.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

#: Run columns a status change may set alongside the status.
STATUS_FIELDS = {"pid", "pgid", "host", "heartbeat_at", "exit_code", "error", "step", "total_steps", "gpus", "job_id"}
#: What a run queued again forgets of its last attempt: its times, process, end, GPUs and job.
REQUEUE_CLEARS = ("started_at", "ended_at", *sorted(STATUS_FIELDS - {"step", "total_steps"}))


def store_path(path: str | Path | None) -> Path:
    """The store directory: the argument, else ``$HYBTUI_STORE``, else ``./store``."""
    chosen = path if path not in (None, "") else os.environ.get("HYBTUI_STORE") or "store"
    return Path(chosen).expanduser()


class Store(RunData, GridRecords, JobRecords):
    """One connection to a run store; open one per process (and per thread).

    Opening refuses a foreign, damaged or too new ``hybtui.db`` before anything touches it
    (`hybtui.runs.database`), then creates or migrates it and sweeps orphaned runs (``swept``).
    A store that can be read but not written is opened ``read_only``: it can be browsed, and
    every write raises StoreReadOnly."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = store_path(path)
        self.db_path = self.path / DB_NAME
        self._prepare_directory()
        #: True where the store can be browsed but not written.
        self.read_only = not database.writable(self.path, self.db_path)
        self._checked_for_writes = False
        self._closed = False
        #: "wal", or the rollback-journal mode SQLite kept where WAL is unavailable.
        self._conn, self.journal_mode = database.open_connection(self.db_path, self.read_only)
        self.db = sqlite_utils.Database(self._conn, execute_plugins=False)
        try:
            self._migrate()
            #: Runs found orphaned (and marked crashed or ended by their outcome) when this store was opened.
            self.swept: list[str] = []
            if not self.read_only:
                (self.path / "runs").mkdir(exist_ok=True)
                self._sweep_on_open()
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot use {self.path} as the run store: {exc.strerror or exc}") from exc
        if self.db_path.exists() and not self.db_path.is_file():
            raise StoreCorrupt(f"{self.db_path} is not a SQLite database (it is not a regular file)")
        if not os.access(self.path, os.W_OK | os.X_OK) and not database.has_database(self.db_path):
            raise StoreReadOnly(f"cannot use {self.path} as the run store: the directory is not writable")

    def _sweep_on_open(self) -> None:
        """Sweep, unless the store cannot take the sweep's writes now (disk full, a lock held
        too long): it can still be read, and the next opener sweeps."""
        try:
            self.swept = self.sweep_orphans()
        except sqlite3.OperationalError as exc:
            log.warning("%s: orphaned runs not swept: %s", self.db_path, exc)

    def check_writable(self) -> None:
        """Raise StoreReadOnly unless this store can be written; on a store too large for a
        quick_check on every open, run it now (once per file state and process) — a write
        into a damaged file would spread the damage."""
        if self.read_only:
            raise StoreReadOnly(
                f"the run store {self.path} is read-only ({self.db_path} cannot be written); "
                f"it can be browsed, not changed"
            )
        if not self._checked_for_writes and self.db_path.stat().st_size > database.QUICK_CHECK_MAX_BYTES:
            try:
                quick_check(self._conn, self.db_path)
            except sqlite3.Error as exc:
                raise store_error(exc, self.db_path) from exc
        self._checked_for_writes = True

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION in one transaction (concurrent openers queue)."""
        if self._user_version() == SCHEMA_VERSION:
            return  # the common case takes no write lock
        if self.read_only:
            raise StoreReadOnly(
                f"{self.db_path} has schema version {self._user_version()} and needs a migration "
                f"to version {SCHEMA_VERSION}, but the store {self.path} is read-only"
            )
        with self._write():
            version = self._user_version()  # again: another process may have migrated meanwhile
            if version > SCHEMA_VERSION:
                raise database.too_new(self.db_path, version)
            for migration in MIGRATIONS[version:]:
                migration(self.db)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _user_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            database.close_connection(self._conn, self.db_path)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """A short write transaction holding the write lock from its first statement.

        Joins the transaction already open, so helpers compose (a status change and
        its event commit together). A damaged file surfaces as StoreCorrupt."""
        if self._conn.in_transaction:
            yield self.db
            return
        if not self._checked_for_writes:
            self.check_writable()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise_if_corrupt(exc, self.db_path)
            raise

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Fully fetched rows: a half-read cursor would keep a read snapshot open."""
        try:
            return list(self.db.query(sql, list(params)))
        except sqlite3.DatabaseError as exc:
            raise_if_corrupt(exc, self.db_path)
            raise

    # -- runs -----------------------------------------------------------------------

    def create_run(
        self,
        config: RunConfig,
        name: str | None = None,
        parent_id: str | None = None,
        status: str = "queued",
        placement: Placement | None = None,
        gpus: tuple[str, ...] = (),
    ) -> str:
        """Record a new run and create ``runs/<id>/config.json``; returns the run id.
        ``placement`` is where it executes (GPU count, backend and its options); a run created
        running holds ``gpus``."""
        if status not in ("queued", "running"):
            raise HybtuiError(f"a new run starts as queued or running, not '{status}'")
        if parent_id is not None:
            parent_id = self.get_run(parent_id).id
        name = name or config.name
        if name is not None:
            config.replace(name=name)  # the configuration's rules for names (no control characters)
        now = time.time()
        record = {
            "name": name,
            "config": config.to_json(),
            "status": status,
            "created_at": now,
            "parent_id": parent_id,
            "step": 0,
            "total_steps": config.steps,
            **(placement or Placement()).columns(),
        }
        if status == "running":
            record.update(started_at=now, heartbeat_at=now, pid=os.getpid(), pgid=os.getpgrp(), host=this_host())
            record.update(gpus=",".join(gpus) or None)
        with self._write() as db:
            run_id = database.new_id(db, "runs")
            db.table("runs").insert({"id": run_id, **record})
            directory = self.path / "runs" / run_id
            try:
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "config.json").write_text(config.to_json() + "\n")
            except OSError as exc:
                shutil.rmtree(directory, ignore_errors=True)
                raise HybtuiError(f"cannot create the run directory {directory}: {exc.strerror or exc}") from exc
        return run_id

    def get_run(self, run_id: str) -> Run:
        """The run with this id, or with this unique id prefix."""
        return Run.from_row(self._by_id("runs", run_id, "run", "hybtui runs ls"))

    def _by_id(self, table: str, key: str, what: str, lister: str) -> dict[str, Any]:
        """The row of ``table`` with this id, or with this unique id prefix."""
        rows = self._rows(f"SELECT * FROM {table} WHERE id = ?", [key])
        if not rows and key:
            rows = self._rows(f"SELECT * FROM {table} WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6", [len(key), key])
        if not rows:
            raise RunNotFound(f"no {what} with id '{key}' in {self.path} (list them with `{lister}`)")
        if len(rows) > 1:
            shown = ", ".join(row["id"] for row in rows[:5]) + (", …" if len(rows) > 5 else "")
            raise RunNotFound(f"{what} id prefix '{key}' is ambiguous: it matches {shown}; give more characters")
        return rows[0]

    def list_runs(self, status: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs newest first, optionally of one status."""
        where, params = "", []
        if status is not None:
            run_status(status)
            where, params = "WHERE status = ?", [status]
        if limit is not None:
            if limit < 1:
                raise HybtuiError(f"--limit must be at least 1 (got {limit})")
            params.append(limit)
        sql = f"SELECT * FROM runs {where} ORDER BY created_at DESC, id DESC"
        return [Run.from_row(row) for row in self._rows(sql + (" LIMIT ?" if limit is not None else ""), params)]

    def run_dir(self, run_id: str) -> Path:
        """``runs/<id>/``: the config, the worker log, checkpoints, embedding caches."""
        return self.path / "runs" / self.get_run(run_id).id

    def set_status(self, run_id: str, status: str, **fields: Any) -> Run:
        """Move a run along its life cycle, stamping times; returns the updated run.

        Entering ``running`` stamps started_at and a first heartbeat and, unless given,
        records the calling process (pid, process group, host) for the orphan sweep.
        Entering an ended status stamps ended_at; re-queueing clears the last attempt's
        process and exit. Each change is also logged as an event.
        """
        status = run_status(status)
        unknown = sorted(set(fields) - STATUS_FIELDS)
        if unknown:
            raise HybtuiError(
                f"set_status cannot set {', '.join(unknown)}; allowed: {', '.join(sorted(STATUS_FIELDS))}"
            )
        now = self._now()
        with self._write() as db:
            run = self.get_run(run_id)
            if status not in run.status.next:
                allowed = ", ".join(sorted(run.status.next)) or "none (it has ended)"
                raise InvalidTransition(f"run {run.id} is {run.status} and cannot become {status}; allowed: {allowed}")
            updates: dict[str, Any] = {"status": status}
            if status == "running":
                updates.update(started_at=now, heartbeat_at=now, ended_at=None, exit_code=None, error=None)
                if "pid" in fields:
                    updates["pgid"] = None  # unless given: never signal the last attempt's group
                else:
                    updates.update(pid=os.getpid(), pgid=os.getpgrp())
                updates["host"] = this_host()
            elif status == "queued":
                updates.update(dict.fromkeys(REQUEUE_CLEARS))
            else:
                updates["ended_at"] = now
            updates.update(fields)
            db.table("runs").update(run.id, updates)
            self._insert_event(
                run.id, "error" if status in ("failed", "crashed") else "info", f"status {run.status} → {status}", now
            )
        return self.get_run(run.id)

    def delete_run(self, run_id: str) -> None:
        """Remove a run's rows from every table and its directory; a running run is refused."""
        with self._write() as db:
            run = self.get_run(run_id)
            if run.status == RunStatus.RUNNING:
                raise InvalidTransition(
                    f"run {run.id} is running (pid {run.pid} on {run.host}); "
                    f"cancel it first with `hybtui runs cancel {run.id}`"
                )
            for table in ("metrics", "results", "events", "artifacts", "telemetry"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run.id])
            db.execute("DELETE FROM runs WHERE id = ?", [run.id])
        directory = self.path / "runs" / run.id
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HybtuiError(
                f"deleted run {run.id} from the store but could not remove {directory}: {exc.strerror or exc}"
            ) from exc

    def sweep_orphans(self, now: float | None = None) -> list[str]:
        """End every local run that is ``running`` on this host but whose process is gone: nobody
        else would ever end it. A worker that could not record its end in the store (disk
        full, lock timeout) left it in its outcome file: the run ends as recorded there
        (e.g. ``failed`` with the cause). Without one (killed, OOM, reboot) it is
        ``crashed``. Returns the swept ids."""
        now = time.time() if now is None else now
        candidates = self._rows(
            "SELECT id, pid FROM runs WHERE status = 'running' AND host = ? AND pid IS NOT NULL "
            "AND ifnull(backend, 'local') = 'local'",  # a remote run's pid is another host's, even of this name
            [this_host()],
        )
        swept = []
        for orphan in candidates:
            if pid_alive(orphan["pid"]):
                continue
            outcome = read_outcome(self.path / "runs" / orphan["id"], orphan["pid"])
            if outcome is None:
                message = (
                    f"worker process {orphan['pid']} on {this_host()} is gone without recording "
                    f"an exit; marked crashed (resume it with `hybtui runs resume {orphan['id']}`)"
                )
                # Its last completed step is its last recorded loss (the heartbeat's lags behind).
                last = self._rows(
                    "SELECT max(step) AS step FROM metrics WHERE run_id = ? AND key = 'loss'", [orphan["id"]]
                )[0]["step"]
                updates = {
                    "status": "crashed",
                    "ended_at": now,
                    "error": message,
                    **({} if last is None else {"step": last}),
                }
            else:
                ended = outcome["status"] + (f": {outcome['error']}" if outcome["error"] else "")
                message = (
                    f"worker process {orphan['pid']} could not record its end in the store; from its "
                    f"outcome file: {ended} at step {outcome['step']}"
                )
                updates = {
                    "status": outcome["status"],
                    "ended_at": outcome["time"],
                    "error": outcome["error"],
                    "exit_code": outcome["exit_code"],
                    "step": outcome["step"],
                }
            with self._write() as db:
                changed = db.execute(  # unless the worker ended it meanwhile
                    f"UPDATE runs SET {', '.join(f'{k} = ?' for k in updates)} "
                    "WHERE id = ? AND status = 'running' AND pid = ?",
                    [*updates.values(), orphan["id"], orphan["pid"]],
                ).rowcount
                if changed:
                    level = "error" if updates["status"] in ("failed", "crashed") else "info"
                    self._insert_event(orphan["id"], level, message, now)
                    swept.append(orphan["id"])
        return swept

    def requeue(self, run_id: str, from_step: int) -> Run:
        """Queue a crashed or cancelled run again to resume from step `from_step` (0: from the
        start), in one transaction: its record then holds exactly steps ≤ `from_step` —
        later metrics, results and checkpoint records are removed, ``step`` is `from_step` —
        so the resumed run's record equals an uninterrupted run's. Checked under the write
        lock, so of two concurrent resumes one wins and the other is told why."""
        with self._write() as db:
            run = self.get_run(run_id)
            if run.status in ("queued", "running"):
                raise InvalidTransition(f"run {run.id} is already {run.status}: resumed by another command")
            if run.status not in ("crashed", "cancelled"):
                raise InvalidTransition(f"run {run.id} is {run.status}; only crashed or cancelled runs can be resumed")
            after = [run.id, int(from_step) if from_step > 0 else -2]  # from the start: everything
            db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", after)
            db.execute("DELETE FROM results WHERE run_id = ? AND ifnull(step, -1) > ?", after)
            db.execute("DELETE FROM artifacts WHERE run_id = ? AND kind = 'checkpoint' AND step > ?", after)
            return self.set_status(run.id, "queued", step=int(from_step))
