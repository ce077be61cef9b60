"""Opening ``hybtui.db`` safely, and SQLite's failures as errors that name the file.

A foreign, damaged or too new file is refused through a read-only connection before
anything — not even a WAL checkpoint or a journal-mode change — touches it. Failures are
told apart by SQLite's result codes, never by message text.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import urllib.parse
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from hybtui.errors import StoreCorrupt, StoreError, StoreReadOnly, StoreTooNew
from hybtui.runs.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

DB_NAME = "hybtui.db"
#: The first bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Up to this size ``PRAGMA quick_check`` runs on every open (measured on a 2-core VM with a warm
#: cache: 0.11–0.28 s for 119 MiB, 0.55–2.2 s for 594 MiB, about 1–4 ms per MiB); larger files are
#: checked before their first write in a process instead, so the app's opens (one per refresh) stay cheap.
QUICK_CHECK_MAX_BYTES = 64 * 2**20
BUSY_TIMEOUT_S = 10.0


def request_wal(conn: sqlite3.Connection) -> str:
    """Ask for WAL; SQLite answers with the mode actually in use, which stays the old
    one where the filesystem cannot share memory between processes (e.g. NFS)."""
    return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower()


def writable(directory: Path, db_path: Path) -> bool:
    """Whether SQLite can write the store: the directory (journal, WAL) and the file.

    ``os.access`` answers for the caller (root included) and reports a read-only mount."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    return not db_path.exists() or os.access(db_path, os.W_OK)


#: The connections this process holds, per database file. POSIX advisory locks belong to the
#: process, and closing *any* descriptor of a file drops all of them (fcntl(2)). SQLite copes
#: among its own connections, but a plain open() and close() of ``hybtui.db`` would silently
#: release the locks of a live connection; another process closing its last connection would
#: then take the file for itself, checkpoint and remove the WAL under ours: a corrupted store.
#: So the file is read directly (its header) only while this process holds no connection to it.
_LIVE: Counter[Path] = Counter()
_LIVE_LOCK = threading.Lock()


def open_connection(db_path: Path, read_only: bool) -> tuple[sqlite3.Connection, str]:
    """``connect``, after the ``probe`` where this process has no connection to the file yet
    (one that has, probed it when it opened that one)."""
    key = db_path.resolve()
    with _LIVE_LOCK:
        if not _LIVE[key]:
            probe(db_path, read_only)
        opened = connect(db_path, read_only)
        _LIVE[key] += 1
    return opened


def close_connection(conn: sqlite3.Connection, db_path: Path) -> None:
    key = db_path.resolve()
    with _LIVE_LOCK:
        conn.close()
        _LIVE[key] -= 1
        if _LIVE[key] <= 0:
            del _LIVE[key]


def wal_idle(db_path: Path) -> bool:
    """A WAL-mode database (header bytes 18-19 are 2) without a ``-wal`` file: none has it open
    (not even this process: then it is not read, see _LIVE)."""
    if _LIVE[db_path.resolve()]:
        return False
    with open(db_path, "rb") as handle:
        header = handle.read(20)
    return header[18:20] == b"\x02\x02" and not db_path.with_name(db_path.name + "-wal").exists()


def primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code (extended codes keep it in their low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


#: The file states (device, inode, size, mtime) this process has seen pass quick_check.
_checked_files: set[tuple[int, int, int, int]] = set()


def quick_check(conn: sqlite3.Connection, db_path: Path) -> None:
    """``PRAGMA quick_check`` (b-tree structure, record formats, no index cross-check),
    once per state of the file and process; raises StoreCorrupt with its first finding."""
    stat = db_path.stat()
    state = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if state in _checked_files:
        return
    findings = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if findings != ["ok"]:
        raise StoreCorrupt(
            f"{db_path} is corrupted (quick_check: {findings[0]}); restore it from a backup or move it away"
        )
    _checked_files.add(state)


def raise_if_corrupt(exc: sqlite3.Error, db_path: Path) -> None:
    """A damaged file found in the middle of a read or write: one line naming it."""
    if primary_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        raise store_error(exc, db_path) from exc


def store_error(exc: sqlite3.Error, db_path: Path) -> StoreError:
    """A SQLite failure as one line naming the file, chosen by SQLite's error code."""
    code = primary_code(exc)
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
        return StoreError(f"{db_path} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s: {detail}; try again")
    if code == sqlite3.SQLITE_CANTOPEN:
        return StoreError(f"cannot open {db_path}: {detail}")
    return StoreError(f"{db_path}: {detail}")


def too_new(db_path: Path, version: int) -> StoreTooNew:
    return StoreTooNew(
        f"{db_path} was written by a newer hybtui (schema version {version}, "
        f"this one knows up to {SCHEMA_VERSION}); upgrade hybtui to open it"
    )


def has_database(db_path: Path) -> bool:
    """A database file with content (SQLite makes a new or empty file a new database)."""
    return db_path.is_file() and db_path.stat().st_size > 0


def probe(db_path: Path, read_only: bool) -> None:
    """Refuse a foreign, damaged or too new ``hybtui.db`` through a read-only connection."""
    if not has_database(db_path):
        return  # SQLite makes a new (or empty) file a new database
    with open(db_path, "rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise StoreCorrupt(f"{db_path} is not a SQLite database; move it away or pick another --store")
    conn = read_only_connection(db_path, read_only)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise too_new(db_path, version)
        if db_path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
            quick_check(conn, db_path)
    except sqlite3.Error as exc:
        raise store_error(exc, db_path) from exc
    finally:
        conn.close()


def read_only_connection(db_path: Path, read_only: bool) -> sqlite3.Connection:
    """A connection that cannot write, and creates no file.

    A WAL database that no connection has open (no ``-wal`` file) is read as immutable:
    a read-only connection would create ``-wal`` and ``-shm`` beside it, and its main
    file only changes at a checkpoint, which needs a writer's WAL first. On a read-only
    filesystem a WAL database cannot be opened read-only without its ``-shm`` file;
    nothing can change it there, so it is then opened as immutable too."""
    uri = f"file:{urllib.parse.quote(str(db_path.resolve()))}?mode=ro"
    if wal_idle(db_path):
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error as exc:
        if not (read_only and primary_code(exc) == sqlite3.SQLITE_CANTOPEN):
            raise store_error(exc, db_path) from exc
    try:
        return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise store_error(exc, db_path) from exc


def connect(db_path: Path, read_only: bool) -> tuple[sqlite3.Connection, str]:
    """The configured connection (read-only where the store cannot be written) and its journal
    mode: "wal", or the rollback-journal mode SQLite kept where WAL is unavailable (e.g. NFS)."""
    if read_only:
        if not has_database(db_path):
            raise StoreReadOnly(f"{db_path} does not exist and the store {db_path.parent} is not writable")
        conn = read_only_connection(db_path, read_only)
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
        conn.execute("PRAGMA query_only=ON")
        return conn, journal_mode
    try:  # timeout= is SQLite's busy_timeout; isolation_level=None: we BEGIN ourselves
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise store_error(exc, db_path) from exc
    try:
        journal_mode = request_wal(conn)
        if journal_mode != "wal":
            log.warning(
                "%s: WAL unavailable, using journal_mode=%s (readers will briefly block writers)", db_path, journal_mode
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(exc, db_path) from exc
    return conn, journal_mode


def random_id() -> str:
    """``YYMMDD-HHMMSS-xxxx`` (UTC): short, sorts by creation time, random suffix."""
    return datetime.now(UTC).strftime("%y%m%d-%H%M%S-") + secrets.token_hex(2)


def new_id(db: sqlite_utils.Database, table: str) -> str:
    """An id no row of ``table`` has (drawn again while taken); call it inside the insert's transaction."""
    while True:
        candidate = random_id()
        if not db.execute(f"SELECT 1 FROM {table} WHERE id = ?", [candidate]).fetchone():
            return candidate
