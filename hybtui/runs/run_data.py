"""What a run reports, written by its worker and read by the CLI and the app: metrics
(loss, learning rate, … per step), result rows, events (its history) and artifacts (files
such as checkpoints).

`Store` gets these methods from `RunData`; they need its write transaction (``_write``),
its fully fetched reads (``_rows``) and ``get_run``. Rows come back as dicts of their
columns: many per run, read incrementally (``after_id``), and shown as tables.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from hybtui.errors import HybtuiError, StoreError
from hybtui.results import RESULT_COLUMNS
from hybtui.runs.schema import RESULT_KEY

log = logging.getLogger(__name__)

LEVELS = ("debug", "info", "warning", "error")


class RunData:
    """The per-run tables' side of the store (mixed into `Store`)."""

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
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
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


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise HybtuiError(f"{what} must be non-empty text (got {value!r})")
    return value


def _nan(row: dict[str, Any]) -> dict[str, Any]:
    if row["value"] is None:
        row["value"] = math.nan
    return row
