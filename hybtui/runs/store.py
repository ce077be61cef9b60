"""The run store: every run in one SQLite file, shared by one UI and many workers.

Layout (DESIGN.md §4): ``<store>/hybtui.db`` plus ``<store>/runs/<run_id>/`` for the
config, the worker log, checkpoints and embedding caches.

Concurrency model, after harlequin's query log: WAL (readers never block the
writer, the writer never blocks readers), a busy timeout so writers queue
instead of failing, ``BEGIN IMMEDIATE`` for every write so a writer takes the
write lock up front (a deferred transaction that reads first and then writes
can fail at once with "database is locked" in WAL, whatever the timeout), and
short transactions: one per batch of metrics. Each ``Store`` owns its own
connection; worker processes open their own ``Store``. The schema is versioned
with ``PRAGMA user_version`` and migrated on open. Times are float UNIX
seconds (UTC).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from hybtui.config import RunConfig
from hybtui.results import RESULT_COLUMNS
from hybtui.errors import HybtuiError, StoreCorrupt, StoreError, StoreReadOnly, StoreTooNew
from hybtui.runs.outcome import read_outcome

log = logging.getLogger(__name__)

DB_NAME = "hybtui.db"
#: The first bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Up to this size ``PRAGMA quick_check`` runs on every open (measured on a 2-core VM with a warm
#: cache: 0.11–0.28 s for 119 MiB, 0.55–2.2 s for 594 MiB, about 1–4 ms per MiB); larger files are
#: checked before their first write in a process instead, so the app's opens (one per refresh) stay cheap.
QUICK_CHECK_MAX_BYTES = 64 * 2**20
BUSY_TIMEOUT_S = 10.0
#: A running run whose heartbeat is older than this is shown as stalled.
STALL_AFTER_S = 60.0

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "crashed")
#: Where a run's current attempt has ended (cancelled and crashed runs can be resumed).
TERMINAL_STATUSES = ("finished", "failed", "cancelled", "crashed")
#: queued → running → finished | failed | cancelled | crashed, queued → cancelled,
#: and a cancelled or crashed run can be resumed (queued or started again).
TRANSITIONS = {
    "queued": {"running", "cancelled"},
    "running": {"finished", "failed", "cancelled", "crashed"},
    "finished": set(),
    "failed": set(),
    "cancelled": {"queued", "running"},
    "crashed": {"queued", "running"},
}
#: Run columns a status change may set alongside the status.
STATUS_FIELDS = {"pid", "pgid", "host", "heartbeat_at", "exit_code", "error", "step", "total_steps"}
LEVELS = ("debug", "info", "warning", "error")
#: The run columns of ``Store.run_overview`` (what a run list and ``is_stalled`` need).
OVERVIEW_COLUMNS = ("id", "name", "status", "created_at", "started_at", "ended_at", "heartbeat_at", "pid", "host",
                    "step", "total_steps")


def store_path(path: str | Path | None) -> Path:
    """The store directory: the argument, else ``$HYBTUI_STORE``, else ``./store``."""
    chosen = path if path not in (None, "") else os.environ.get("HYBTUI_STORE") or "store"
    return Path(chosen).expanduser()


def this_host() -> str:
    """The host name recorded with a running run: pids are only judged on their own host."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process exists on this host (a process we may not signal exists too).

    A zombie — exited, not yet reaped by its parent — is dead: a worker killed with -9
    whose parent never waits for it must still be swept as crashed.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust the signal
    return state != "Z"


def is_stalled(run: dict[str, Any], now: float | None = None) -> bool:
    """A running run whose process is alive but whose heartbeat is older than STALL_AFTER_S.

    Computed, never stored: the run may recover. On another host the process cannot be
    checked, so the heartbeat alone decides; a dead process here is the sweep's business.
    """
    if run["status"] != "running":
        return False
    if run["host"] == this_host() and (run["pid"] is None or not pid_alive(run["pid"])):
        return False
    last = run["heartbeat_at"] or run["started_at"] or run["created_at"]
    return (time.time() if now is None else now) - last > STALL_AFTER_S


def _v1_tables(db: sqlite_utils.Database) -> None:
    """The initial schema: runs and the four tables of what they report."""
    db.table("runs").create(
        {"id": str, "name": str, "config": str, "status": str, "created_at": float,
         "started_at": float, "ended_at": float, "pid": int, "pgid": int, "host": str,
         "heartbeat_at": float, "exit_code": int, "error": str, "parent_id": str,
         "step": int, "total_steps": int},
        pk="id", not_null={"config", "status", "created_at"}, defaults={"step": 0},
    )
    per_run = {"foreign_keys": [("run_id", "runs", "id")], "pk": "id"}
    db.table("metrics").create(
        {"id": int, "run_id": str, "key": str, "step": int, "value": float, "time": float},
        not_null={"run_id", "key", "step", "time"}, **per_run,
    )
    db.table("results").create(
        {"id": int, "run_id": str, "step": int, "bench": str, "setting": str, "query_lang": str,
         "doc_lang": str, "metric": str, "value": float, "seen": str, "final": bool},
        not_null={"run_id", "bench", "setting", "query_lang", "doc_lang", "metric", "final"}, **per_run,
    )
    db.table("events").create(
        {"id": int, "run_id": str, "time": float, "level": str, "message": str},
        not_null={"run_id", "time", "level", "message"}, **per_run,
    )
    db.table("artifacts").create(
        {"id": int, "run_id": str, "kind": str, "path": str, "step": int, "time": float},
        not_null={"run_id", "kind", "path", "time"}, **per_run,
    )


def _v2_indexes(db: sqlite_utils.Database) -> None:
    """Indexes for the reads the UI repeats: the run list, and per-run incremental reads.

    An index on (run_id) is ordered by (run_id, rowid), so ``id > ?`` for one run is a
    range scan; (run_id, key) answers the last value per key from the index alone.
    """
    db.table("runs").create_index(["created_at"])
    db.table("runs").create_index(["status", "created_at"])
    db.table("metrics").create_index(["run_id"])
    db.table("metrics").create_index(["run_id", "key"])
    for name in ("results", "events", "artifacts"):
        db.table(name).create_index(["run_id"])


def _v3_grids(db: sqlite_utils.Database) -> None:
    """Grids: sets of runs launched together to be reported together (`hybtui reproduce`).

    ``spec`` is JSON: the grid's options and its cells, each naming its run id."""
    db.table("grids").create({"id": str, "name": str, "created_at": float, "spec": str},
                             pk="id", not_null={"spec", "created_at"})


def _v4_headline_index(db: sqlite_utils.Database) -> None:
    """A partial index over the final macro-averages only: the run list reads the headline
    figures of every run in one query without scanning millions of per-language rows."""
    db.execute("CREATE INDEX IF NOT EXISTS idx_results_headline ON results (run_id, bench) "
               "WHERE final = 1 AND query_lang = 'avg' AND seen IS NULL")


#: What identifies a result row (NULLs made comparable: SQLite's unique indexes treat them as distinct).
RESULT_KEY = ("run_id, ifnull(step, -1), final, bench, setting, query_lang, doc_lang, metric, "
              "ifnull(seen, '')")


def _v5_unique_rows(db: sqlite_utils.Database) -> None:
    """One metric per (run, key, step) and one result per key: a recomputed step (a resumed
    run) replaces its rows. Stores written before keep the last value of each duplicate."""
    db.execute("DELETE FROM metrics WHERE id NOT IN (SELECT max(id) FROM metrics GROUP BY run_id, key, step)")
    db.execute(f"DELETE FROM results WHERE id NOT IN (SELECT max(id) FROM results GROUP BY {RESULT_KEY})")
    db.execute("CREATE UNIQUE INDEX idx_metrics_unique ON metrics (run_id, key, step)")
    db.execute(f"CREATE UNIQUE INDEX idx_results_unique ON results ({RESULT_KEY})")


#: Schema version N is reached by applying MIGRATIONS[:N] in order.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1_tables, _v2_indexes, _v3_grids,
                                                             _v4_headline_index, _v5_unique_rows]
SCHEMA_VERSION = len(MIGRATIONS)


def _request_wal(conn: sqlite3.Connection) -> str:
    """Ask for WAL; SQLite answers with the mode actually in use, which stays the old
    one where the filesystem cannot share memory between processes (e.g. NFS)."""
    return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower()


def _writable(directory: Path, db_path: Path) -> bool:
    """Whether SQLite can write the store: the directory (journal, WAL) and the file.

    ``os.access`` answers for the caller (root included) and reports a read-only mount."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    return not db_path.exists() or os.access(db_path, os.W_OK)


def _wal_idle(db_path: Path) -> bool:
    """A WAL-mode database (header bytes 18-19 are 2) without a ``-wal`` file: none has it open."""
    with open(db_path, "rb") as handle:
        header = handle.read(20)
    return header[18:20] == b"\x02\x02" and not db_path.with_name(db_path.name + "-wal").exists()


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code (extended codes keep it in their low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


#: The file states (device, inode, size, mtime) this process has seen pass quick_check.
_checked_files: set[tuple[int, int, int, int]] = set()


def _quick_check(conn: sqlite3.Connection, db_path: Path) -> None:
    """``PRAGMA quick_check`` (b-tree structure, record formats, no index cross-check),
    once per state of the file and process; raises StoreCorrupt with its first finding."""
    stat = db_path.stat()
    state = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if state in _checked_files:
        return
    findings = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if findings != ["ok"]:
        raise StoreCorrupt(f"{db_path} is corrupted (quick_check: {findings[0]}); "
                           f"restore it from a backup or move it away")
    _checked_files.add(state)


def _raise_if_corrupt(exc: sqlite3.Error, db_path: Path) -> None:
    """A damaged file found in the middle of a read or write: one line naming it."""
    if _primary_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        raise store_error(exc, db_path) from exc


def store_error(exc: sqlite3.Error, db_path: Path) -> StoreError:
    """A SQLite failure as one line naming the file, chosen by SQLite's error code."""
    code = _primary_code(exc)
    detail = f"{exc} ({getattr(exc, 'sqlite_errorname', None) or type(exc).__name__})"
    if code == sqlite3.SQLITE_NOTADB:
        return StoreCorrupt(f"{db_path} is not a SQLite database; move it away or pick another --store")
    if code == sqlite3.SQLITE_CORRUPT:
        return StoreCorrupt(f"{db_path} is corrupted: {detail}; restore it from a backup or move it away")
    if code == sqlite3.SQLITE_FULL:
        return StoreError(f"{db_path} cannot grow: the disk is full ({detail})")
    if code == sqlite3.SQLITE_READONLY:
        return StoreReadOnly(f"{db_path} is read-only: {detail}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(f"{db_path} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s: {detail}; "
                          f"try again")
    if code == sqlite3.SQLITE_CANTOPEN:
        return StoreError(f"cannot open {db_path}: {detail}")
    return StoreError(f"{db_path}: {detail}")


def _new_run_id() -> str:
    """``YYMMDD-HHMMSS-xxxx`` (UTC): short, sorts by creation time, random suffix."""
    return datetime.now(timezone.utc).strftime("%y%m%d-%H%M%S-") + secrets.token_hex(2)


class Store:
    """One connection to a run store; open one per process (and per thread).

    Opening first probes ``hybtui.db`` through a read-only connection (its header, its
    schema version and, for files up to QUICK_CHECK_MAX_BYTES, ``PRAGMA quick_check``),
    so a foreign, damaged or too new file is refused before anything — not even a WAL
    checkpoint or a journal-mode change — touches it. Then it creates the database if
    needed, migrates the schema and sweeps orphaned runs (``swept``). A store that can
    be read but not written (a read-only mount, file or directory) is opened read-only
    (``read_only``): it can be browsed, and every write raises StoreReadOnly."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = store_path(path)
        self.db_path = self.path / DB_NAME
        self._prepare_directory()
        #: True where the store can be browsed but not written.
        self.read_only = not _writable(self.path, self.db_path)
        self._probe()
        self._checked_for_writes = False
        self._conn = self._connect()
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
        if not os.access(self.path, os.W_OK | os.X_OK) and not self._has_database():
            raise StoreReadOnly(f"cannot use {self.path} as the run store: the directory is not writable")

    def _sweep_on_open(self) -> None:
        """Sweep, unless the store cannot take the sweep's writes now (disk full, a lock held
        too long): it can still be read, and the next opener sweeps."""
        try:
            self.swept = self.sweep_orphans()
        except sqlite3.OperationalError as exc:
            log.warning("%s: orphaned runs not swept: %s", self.db_path, exc)

    def _has_database(self) -> bool:
        return self.db_path.is_file() and self.db_path.stat().st_size > 0

    def _probe(self) -> None:
        """Refuse a foreign, damaged or too new ``hybtui.db`` through a read-only connection."""
        if not self._has_database():
            return  # SQLite makes a new (or empty) file a new database
        with open(self.db_path, "rb") as handle:
            if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise StoreCorrupt(f"{self.db_path} is not a SQLite database; move it away or pick another --store")
        conn = self._read_only_connection()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreTooNew(f"{self.db_path} was written by a newer hybtui (schema version {version}, "
                                  f"this one knows up to {SCHEMA_VERSION}); upgrade hybtui to open it")
            if self.db_path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                _quick_check(conn, self.db_path)
        except sqlite3.Error as exc:
            raise store_error(exc, self.db_path) from exc
        finally:
            conn.close()

    def _read_only_connection(self) -> sqlite3.Connection:
        """A connection that cannot write, and creates no file.

        A WAL database that no connection has open (no ``-wal`` file) is read as immutable:
        a read-only connection would create ``-wal`` and ``-shm`` beside it, and its main
        file only changes at a checkpoint, which needs a writer's WAL first. On a read-only
        filesystem a WAL database cannot be opened read-only without its ``-shm`` file;
        nothing can change it there, so it is then opened as immutable too."""
        uri = f"file:{urllib.parse.quote(str(self.db_path.resolve()))}?mode=ro"
        if _wal_idle(self.db_path):
            uri += "&immutable=1"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            if not (self.read_only and _primary_code(exc) == sqlite3.SQLITE_CANTOPEN):
                raise store_error(exc, self.db_path) from exc
        try:
            return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(exc, self.db_path) from exc

    def _connect(self) -> sqlite3.Connection:
        """Open and configure the connection (read-only where the store cannot be written)."""
        if self.read_only:
            if not self._has_database():
                raise StoreReadOnly(f"{self.db_path} does not exist and the store {self.path} is not writable")
            conn = self._read_only_connection()
            self.journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
            conn.execute("PRAGMA query_only=ON")
            return conn
        try:  # timeout= is SQLite's busy_timeout; isolation_level=None: we BEGIN ourselves
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(exc, self.db_path) from exc
        try:
            #: "wal", or the rollback-journal mode SQLite kept where WAL is unavailable.
            self.journal_mode = _request_wal(conn)
            if self.journal_mode != "wal":
                log.warning("%s: WAL unavailable, using journal_mode=%s (readers will briefly "
                            "block writers)", self.db_path, self.journal_mode)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(exc, self.db_path) from exc
        return conn

    def check_writable(self) -> None:
        """Raise StoreReadOnly unless this store can be written; on a store too large for a
        quick_check on every open, run it now (once per file state and process) — a write
        into a damaged file would spread the damage."""
        if self.read_only:
            raise StoreReadOnly(f"the run store {self.path} is read-only ({self.db_path} cannot be written); "
                                f"it can be browsed, not changed")
        if not self._checked_for_writes and self.db_path.stat().st_size > QUICK_CHECK_MAX_BYTES:
            try:
                _quick_check(self._conn, self.db_path)
            except sqlite3.Error as exc:
                raise store_error(exc, self.db_path) from exc
        self._checked_for_writes = True

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION in one transaction (concurrent openers queue)."""
        if self._user_version() == SCHEMA_VERSION:
            return  # the common case takes no write lock
        if self.read_only:
            raise StoreReadOnly(f"{self.db_path} has schema version {self._user_version()} and needs a migration "
                                f"to version {SCHEMA_VERSION}, but the store {self.path} is read-only")
        with self._write():
            version = self._user_version()  # again: another process may have migrated meanwhile
            if version > SCHEMA_VERSION:
                raise StoreTooNew(
                    f"{self.db_path} was written by a newer hybtui (schema version {version}, "
                    f"this one knows up to {SCHEMA_VERSION}); upgrade hybtui to open it")
            for migration in MIGRATIONS[version:]:
                migration(self.db)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _user_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

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
            _raise_if_corrupt(exc, self.db_path)
            raise

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Fully fetched rows: a half-read cursor would keep a read snapshot open."""
        try:
            return list(self.db.query(sql, list(params)))
        except sqlite3.DatabaseError as exc:
            _raise_if_corrupt(exc, self.db_path)
            raise

    # -- runs -----------------------------------------------------------------------

    def create_run(self, config: RunConfig, name: str | None = None, parent_id: str | None = None,
                   status: str = "queued") -> str:
        """Record a new run and create ``runs/<id>/config.json``; returns the run id."""
        if status not in ("queued", "running"):
            raise HybtuiError(f"a new run starts as queued or running, not '{status}'")
        if parent_id is not None:
            parent_id = self.get_run(parent_id)["id"]
        name = name or config.name
        if name is not None:
            config.replace(name=name)  # the configuration's rules for names (no control characters)
        now = time.time()
        record = {"name": name, "config": config.to_json(), "status": status,
                  "created_at": now, "parent_id": parent_id, "step": 0, "total_steps": config.steps}
        if status == "running":
            record.update(started_at=now, heartbeat_at=now, pid=os.getpid(), pgid=os.getpgrp(),
                          host=this_host())
        with self._write() as db:
            run_id = _new_run_id()
            while db.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone():
                run_id = _new_run_id()
            db.table("runs").insert({"id": run_id, **record})
            directory = self.path / "runs" / run_id
            try:
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "config.json").write_text(config.to_json() + "\n")
            except OSError as exc:
                shutil.rmtree(directory, ignore_errors=True)
                raise HybtuiError(f"cannot create the run directory {directory}: "
                                  f"{exc.strerror or exc}") from exc
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run with this id, or with this unique id prefix; ``config`` decoded to a dict."""
        return _decoded(self._by_id("runs", run_id, "run", "hybtui runs ls"))

    def _by_id(self, table: str, key: str, what: str, lister: str) -> dict[str, Any]:
        """The row of ``table`` with this id, or with this unique id prefix."""
        rows = self._rows(f"SELECT * FROM {table} WHERE id = ?", [key])
        if not rows and key:
            rows = self._rows(f"SELECT * FROM {table} WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
                              [len(key), key])
        if not rows:
            raise HybtuiError(f"no {what} with id '{key}' in {self.path} (list them with `{lister}`)")
        if len(rows) > 1:
            shown = ", ".join(row["id"] for row in rows[:5]) + (", …" if len(rows) > 5 else "")
            raise HybtuiError(f"{what} id prefix '{key}' is ambiguous: it matches {shown}; "
                              f"give more characters")
        return rows[0]

    def list_runs(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs newest first, optionally of one status; ``config`` decoded to a dict."""
        where, params = "", []
        if status is not None:
            _check_status(status)
            where, params = "WHERE status = ?", [status]
        if limit is not None:
            if limit < 1:
                raise HybtuiError(f"--limit must be at least 1 (got {limit})")
            params.append(limit)
        sql = f"SELECT * FROM runs {where} ORDER BY created_at DESC, id DESC"
        return [_decoded(row) for row in self._rows(sql + (" LIMIT ?" if limit is not None else ""), params)]

    def run_dir(self, run_id: str) -> Path:
        """``runs/<id>/``: the config, the worker log, checkpoints, embedding caches."""
        return self.path / "runs" / self.get_run(run_id)["id"]

    # -- grids ----------------------------------------------------------------------

    def create_grid(self, name: str, spec: dict[str, Any]) -> str:
        """Record a grid of already created runs; returns its id (``grids/<id>/`` holds its report)."""
        with self._write() as db:
            grid_id = _new_run_id()
            while db.execute("SELECT 1 FROM grids WHERE id = ?", [grid_id]).fetchone():
                grid_id = _new_run_id()
            db.table("grids").insert({"id": grid_id, "name": name, "created_at": time.time(),
                                      "spec": _strict_json(spec, f"grid {name}")})
        return grid_id

    def get_grid(self, grid_id: str) -> dict[str, Any]:
        """The grid with this id or unique id prefix; ``spec`` decoded."""
        row = self._by_id("grids", grid_id, "grid", "hybtui grids ls")
        return {**row, "spec": json.loads(row["spec"])}

    def list_grids(self) -> list[dict[str, Any]]:
        """Grids, newest first; ``spec`` decoded."""
        return [{**row, "spec": json.loads(row["spec"])}
                for row in self._rows("SELECT * FROM grids ORDER BY created_at DESC, id DESC")]

    def grid_dir(self, grid_id: str) -> Path:
        """``grids/<id>/``: where the grid's report is written."""
        return self.path / "grids" / self.get_grid(grid_id)["id"]

    def set_status(self, run_id: str, status: str, **fields: Any) -> dict[str, Any]:
        """Move a run along its life cycle, stamping times; returns the updated run.

        Entering ``running`` stamps started_at and a first heartbeat and, unless given,
        records the calling process (pid, process group, host) for the orphan sweep.
        Entering an ended status stamps ended_at; re-queueing clears the last attempt's
        process and exit. Each change is also logged as an event.
        """
        _check_status(status)
        unknown = sorted(set(fields) - STATUS_FIELDS)
        if unknown:
            raise HybtuiError(f"set_status cannot set {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(STATUS_FIELDS))}")
        now = time.time()
        with self._write() as db:
            run = self.get_run(run_id)
            if status not in TRANSITIONS[run["status"]]:
                allowed = ", ".join(sorted(TRANSITIONS[run["status"]])) or "none (it has ended)"
                raise HybtuiError(f"run {run['id']} is {run['status']} and cannot become {status}; "
                                  f"allowed: {allowed}")
            updates: dict[str, Any] = {"status": status}
            if status == "running":
                updates.update(started_at=now, heartbeat_at=now, ended_at=None, exit_code=None, error=None)
                if "pid" in fields:
                    updates["pgid"] = None  # unless given: never signal the last attempt's group
                else:
                    updates.update(pid=os.getpid(), pgid=os.getpgrp())
                updates["host"] = this_host()
            elif status == "queued":
                updates.update(started_at=None, ended_at=None, pid=None, pgid=None, host=None,
                               heartbeat_at=None, exit_code=None, error=None)
            else:
                updates["ended_at"] = now
            updates.update(fields)
            db.table("runs").update(run["id"], updates)
            self._insert_event(run["id"], "error" if status in ("failed", "crashed") else "info",
                               f"status {run['status']} → {status}", now)
        return self.get_run(run["id"])

    def delete_run(self, run_id: str) -> None:
        """Remove a run's rows from every table and its directory; a running run is refused."""
        with self._write() as db:
            run = self.get_run(run_id)
            if run["status"] == "running":
                raise HybtuiError(f"run {run['id']} is running (pid {run['pid']} on {run['host']}); "
                                  f"cancel it first with `hybtui runs cancel {run['id']}`")
            for table in ("metrics", "results", "events", "artifacts"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run["id"]])
            db.execute("DELETE FROM runs WHERE id = ?", [run["id"]])
        directory = self.path / "runs" / run["id"]
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HybtuiError(f"deleted run {run['id']} from the store but could not remove "
                              f"{directory}: {exc.strerror or exc}") from exc

    def sweep_orphans(self, now: float | None = None) -> list[str]:
        """End every run that is ``running`` on this host but whose process is gone: nobody
        else would ever end it. A worker that could not record its end in the store (disk
        full, lock timeout) left it in its outcome file: the run ends as recorded there
        (e.g. ``failed`` with the cause). Without one (killed, OOM, reboot) it is
        ``crashed``. Returns the swept ids."""
        now = time.time() if now is None else now
        candidates = self._rows("SELECT id, pid FROM runs WHERE status = 'running' AND host = ? "
                                "AND pid IS NOT NULL", [this_host()])
        swept = []
        for run in candidates:
            if pid_alive(run["pid"]):
                continue
            outcome = read_outcome(self.path / "runs" / run["id"], run["pid"])
            if outcome is None:
                message = (f"worker process {run['pid']} on {this_host()} is gone without recording "
                           f"an exit; marked crashed (resume it with `hybtui runs resume {run['id']}`)")
                # Its last completed step is its last recorded loss (the heartbeat's lags behind).
                last = self._rows("SELECT max(step) AS step FROM metrics WHERE run_id = ? AND key = 'loss'",
                                  [run["id"]])[0]["step"]
                updates = {"status": "crashed", "ended_at": now, "error": message,
                           **({} if last is None else {"step": last})}
            else:
                ended = outcome["status"] + (f": {outcome['error']}" if outcome["error"] else "")
                message = (f"worker process {run['pid']} could not record its end in the store; from its "
                           f"outcome file: {ended} at step {outcome['step']}")
                updates = {"status": outcome["status"], "ended_at": outcome["time"], "error": outcome["error"],
                           "exit_code": outcome["exit_code"], "step": outcome["step"]}
            with self._write() as db:
                changed = db.execute(  # unless the worker ended it meanwhile
                    f"UPDATE runs SET {', '.join(f'{k} = ?' for k in updates)} "
                    "WHERE id = ? AND status = 'running' AND pid = ?",
                    [*updates.values(), run["id"], run["pid"]]).rowcount
                if changed:
                    level = "error" if updates["status"] in ("failed", "crashed") else "info"
                    self._insert_event(run["id"], level, message, now)
                    swept.append(run["id"])
        return swept

    # -- writer side (the worker) ---------------------------------------------------

    def heartbeat(self, run_id: str, step: int | None = None) -> None:
        """The worker is alive (and at ``step``): keeps the run from looking stalled."""
        with self._write() as db:
            cursor = db.execute("UPDATE runs SET heartbeat_at = ?, step = coalesce(?, step) WHERE id = ?",
                                [time.time(), None if step is None else int(step), run_id])
        if cursor.rowcount == 0:
            self.get_run(run_id)  # raises "no run with id …"

    def add_metrics(self, run_id: str, metrics: Iterable[tuple[str, int, float]]) -> None:
        """Record ``(key, step, value)`` rows in one transaction; a step recorded again replaces
        its value. NaN is kept (as NULL in SQLite, which has no NaN) and read back as NaN."""
        now = time.time()
        rows = []
        for item in metrics:
            try:
                key, step, value = item
                rows.append({"run_id": run_id, "key": _text(key, "metric key"), "step": int(step),
                             "value": float(value), "time": now})
            except (TypeError, ValueError) as exc:
                raise HybtuiError(f"a metric must be (key, step, value) with a text key, an integer "
                                  f"step and a number; got {item!r}") from exc
        if rows:
            with self._existing_run(run_id):
                self._upsert("metrics", rows, "run_id, key, step", ("value", "time"))

    def add_results(self, run_id: str, rows: Iterable[Any], step: int | None, final: bool) -> None:
        """Record result rows (dicts, or objects with ``as_dict()`` such as ResultRow); a row
        recorded again (same step, benchmark, setting, languages, metric) replaces its value."""
        records = []
        for row in rows:
            data = row.as_dict() if hasattr(row, "as_dict") else dict(row)
            missing = [c for c in RESULT_COLUMNS if c not in data and c != "seen"]
            if missing:
                raise HybtuiError(f"a result row needs {', '.join(RESULT_COLUMNS)}; "
                                  f"{data!r} lacks {', '.join(missing)}")
            try:
                value = float(data["value"])
            except (TypeError, ValueError) as exc:
                raise HybtuiError(f"result value must be a number; got {data['value']!r}") from exc
            records.append({"run_id": run_id, "step": None if step is None else int(step),
                            **{c: data.get(c) for c in RESULT_COLUMNS}, "value": value,
                            "final": bool(final)})
        if records:
            with self._existing_run(run_id):
                self._upsert("results", records, RESULT_KEY, ("value",))

    def _upsert(self, table: str, rows: list[dict[str, Any]], key: str, updated: tuple[str, ...]) -> None:
        columns = list(rows[0])
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
               f"ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updated))
        self._conn.executemany(sql, [[row[c] for c in columns] for row in rows])

    def requeue(self, run_id: str, from_step: int) -> dict[str, Any]:
        """Queue a crashed or cancelled run again to resume from step `from_step` (0: from the
        start), in one transaction: its record then holds exactly steps ≤ `from_step` —
        later metrics, results and checkpoint records are removed, ``step`` is `from_step` —
        so the resumed run's record equals an uninterrupted run's. Checked under the write
        lock, so of two concurrent resumes one wins and the other is told why."""
        with self._write() as db:
            run = self.get_run(run_id)
            if run["status"] in ("queued", "running"):
                raise HybtuiError(f"run {run['id']} is already {run['status']}: resumed by another command")
            if run["status"] not in ("crashed", "cancelled"):
                raise HybtuiError(f"run {run['id']} is {run['status']}; only crashed or cancelled runs "
                                  f"can be resumed")
            after = [run["id"], int(from_step) if from_step > 0 else -2]  # from the start: everything
            db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", after)
            db.execute("DELETE FROM results WHERE run_id = ? AND ifnull(step, -1) > ?", after)
            db.execute("DELETE FROM artifacts WHERE run_id = ? AND kind = 'checkpoint' AND step > ?", after)
            return self.set_status(run["id"], "queued", step=int(from_step))

    def remove_artifacts(self, run_id: str, kind: str, step: int) -> None:
        """Forget the artifacts of `kind` at `step` (before their files are deleted)."""
        with self._write() as db:
            db.execute("DELETE FROM artifacts WHERE run_id = ? AND kind = ? AND step = ?", [run_id, kind, int(step)])

    def add_event(self, run_id: str, level: str, message: str) -> int | None:
        """Log a line in the run's history; returns its id, or None where the database
        failed. Never raises on database trouble: logging must not fail a training run."""
        if level not in LEVELS:
            raise HybtuiError(f"event level must be one of {', '.join(LEVELS)} (got '{level}')")
        try:
            with self._write():
                return self._insert_event(run_id, level, str(message), time.time())
        except (sqlite3.Error, StoreError) as exc:
            log.warning("could not record event for run %s in %s: %s", run_id, self.db_path, exc)
            return None

    def add_artifact(self, run_id: str, kind: str, path: str | Path, step: int | None = None) -> None:
        """Record a file a run produced. A relative ``path`` is relative to the run directory;
        paths inside it are stored relative, so a moved store still finds them."""
        directory = (self.path / "runs" / run_id).resolve()
        resolved = (directory / path).resolve()
        stored = str(resolved.relative_to(directory)) if resolved.is_relative_to(directory) else str(resolved)
        with self._existing_run(run_id) as db:
            db.table("artifacts").insert({"run_id": run_id, "kind": _text(kind, "artifact kind"),
                                          "path": stored, "step": None if step is None else int(step),
                                          "time": time.time()})

    @contextmanager
    def _existing_run(self, run_id: str) -> Iterator[sqlite_utils.Database]:
        """A write transaction that turns a foreign-key failure into "no run with id"."""
        try:
            with self._write() as db:
                yield db
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" not in str(exc):
                raise
            self.get_run(run_id)  # raises the helpful error
            raise

    def _insert_event(self, run_id: str, level: str, message: str, now: float) -> int:
        return self.db.execute("INSERT INTO events (run_id, time, level, message) VALUES (?, ?, ?, ?)",
                               [run_id, now, level, message]).lastrowid

    # -- reader side (the UI and the CLI) -------------------------------------------

    def metrics_since(self, run_id: str, after_id: int = 0,
                      keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Metric rows with id > after_id, oldest first; pass the last id back next time.

        Ids grow in commit order (one writer at a time), so nothing is ever skipped."""
        sql = "SELECT id, key, step, value, time FROM metrics WHERE run_id = ? AND id > ?"
        params = [run_id, after_id]
        if keys is not None:
            keys = list(keys)
            sql += f" AND key IN ({', '.join('?' * len(keys))})"
            params += keys
        return [_nan(row) for row in self._rows(sql + " ORDER BY id", params)]

    def latest_metrics(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The last recorded row per metric key: ``{key: {id, step, value, time}}``."""
        rows = self._rows("SELECT id, key, step, value, time FROM metrics WHERE id IN "
                          "(SELECT max(id) FROM metrics WHERE run_id = ? GROUP BY key) ORDER BY key", [run_id])
        return {row.pop("key"): _nan(row) for row in rows}

    def results(self, run_id: str, final_only: bool = True) -> list[dict[str, Any]]:
        """Result rows (the §3 columns plus step and final), in the order recorded."""
        sql = ("SELECT step, final, " + ", ".join(RESULT_COLUMNS) + " FROM results WHERE run_id = ?"
               + (" AND final" if final_only else "") + " ORDER BY id")
        return [{**row, "final": bool(row["final"])} for row in self._rows(sql, [run_id])]

    def run_overview(self) -> list[dict[str, Any]]:
        """Every run, newest first, with what a run list shows: its status columns, the
        configuration fields model / sampler / alpha / train (``config_error`` says why
        they are missing where the stored configuration is not a JSON object), and ``figures``
        {bench: {(setting, metric): value}} of its final macro-averages (mAP, rank distance).

        One query: the configuration is read with json_extract and the figures through
        a partial index, so 10,000 runs with millions of result rows take a fraction of a
        second, where a per-run read takes seconds."""
        fields = ", ".join(f"json_extract(r.cfg, '$.{key}')" for key in ("model", "sampler", "alpha"))
        sql = (f"SELECT {', '.join('r.' + c for c in OVERVIEW_COLUMNS)}, json_type(r.cfg) IS 'object', {fields}, "
               "CASE WHEN json_type(r.cfg, '$.train') = 'array' THEN json_extract(r.cfg, '$.train') END, "
               "h.bench, h.setting, h.metric, h.value "
               # cfg: the configuration where it is JSON (a malformed one would fail the whole query)
               "FROM (SELECT *, CASE WHEN json_valid(config) THEN config END AS cfg FROM runs) r "
               "LEFT JOIN results h INDEXED BY idx_results_headline ON h.run_id = r.id "
               "AND h.final = 1 AND h.query_lang = 'avg' AND h.seen IS NULL "
               "AND h.metric IN ('map', 'rank_distance') "
               "ORDER BY r.created_at DESC, r.id DESC")
        runs: dict[str, dict[str, Any]] = {}
        for row in self._conn.execute(sql):
            run = runs.get(row[0])
            if run is None:
                run = runs[row[0]] = dict(zip(OVERVIEW_COLUMNS, row))
                readable, model, sampler, alpha, train = row[len(OVERVIEW_COLUMNS):-4]
                run.update(_overview_config(readable, model, sampler, alpha, train), figures={})
            bench, setting, metric, value = row[-4:]
            if bench is not None:
                run["figures"].setdefault(bench, {})[setting, metric] = math.nan if value is None else value
        return list(runs.values())

    def events(self, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        """Event rows with id > after_id, oldest first (incremental like metrics_since)."""
        return self._rows("SELECT id, time, level, message FROM events WHERE run_id = ? AND id > ? "
                          "ORDER BY id", [run_id, after_id])

    def artifacts(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Artifact rows with ``path`` resolved against the run directory."""
        sql, params = "SELECT id, kind, path, step, time FROM artifacts WHERE run_id = ?", [run_id]
        if kind is not None:
            sql, params = sql + " AND kind = ?", params + [kind]
        directory = self.path / "runs" / run_id
        return [{**row, "path": directory / row["path"]} for row in self._rows(sql + " ORDER BY id", params)]


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise HybtuiError(f"unknown run status '{status}'; one of {', '.join(STATUSES)}")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise HybtuiError(f"{what} must be non-empty text (got {value!r})")
    return value


#: What a run shows in place of its configuration fields when that cannot be read.
UNREADABLE = "unreadable config"


def _strict_json(data: Any, what: str) -> str:
    """JSON that SQLite's JSON functions accept: NaN and infinities are refused."""
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError as exc:
        raise HybtuiError(f"{what}: cannot store a value that is not a finite number ({exc})") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """The row with ``config`` decoded; a configuration that is not a strict JSON object
    (written by something else: NaN, truncated text) decodes to {} with ``config_error``
    saying why, so one bad row never hides the others."""
    try:
        config = json.loads(row["config"], parse_constant=_reject_constant)
        error = None if isinstance(config, dict) else f"{UNREADABLE}: not a JSON object"
    except (TypeError, ValueError) as exc:
        config, error = None, f"{UNREADABLE}: {exc}"
    return {**row, "config": config if error is None else {}, "config_error": error}


def _overview_config(readable: int, model: Any, sampler: Any, alpha: Any, train: Any) -> dict[str, Any]:
    """The run list's configuration fields, each of the type it shows; UNREADABLE in model
    where the configuration cannot be read."""
    try:
        languages = json.loads(train) if train else []
    except ValueError:
        languages = []
    return {"model": UNREADABLE if not readable else None if model is None else str(model),
            "sampler": sampler if isinstance(sampler, str) else None,
            "alpha": alpha if isinstance(alpha, (int, float)) and math.isfinite(alpha) else None,
            "train": [str(spec) for spec in languages],
            "config_error": None if readable else UNREADABLE}


def _nan(row: dict[str, Any]) -> dict[str, Any]:
    if row["value"] is None:
        row["value"] = math.nan
    return row
