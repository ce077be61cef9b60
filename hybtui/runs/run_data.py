"""What a run reports, written by its worker and read by the CLI and the app: heartbeats,
metrics (loss, learning rate, … per step), result rows, events (its history), artifacts
(files such as checkpoints), and the run list's overview of them.

`Store` gets these methods from `RunData`; they need its write transaction (``_write``),
its fully fetched reads (``_rows``) and ``get_run``. Rows come back as dicts of their
columns: many per run, read incrementally (``after_id``), and shown as tables.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import sqlite_utils

from hybtui.errors import HybtuiError, InvalidTransition, StoreError
from hybtui.results import AVERAGE, RESULT_COLUMNS
from hybtui.runs.records import RunState, RunStatus, RunSummary, summary_config
from hybtui.runs.schema import RESULT_KEY

log = logging.getLogger(__name__)

#: The run columns of ``run_overview`` (what a run list and ``is_stalled`` need).
OVERVIEW_COLUMNS = tuple(f.name for f in fields(RunState))
#: The configuration's lists of benchmark specs the run list shows (and filters languages by).
SPECS = ("train", "eval")
LEVELS = ("debug", "info", "warning", "error")
#: What a GPU sample holds besides its time and device: utilisation (%), memory used and total
#: (MiB), power (W) and temperature (°C).
TELEMETRY_FIELDS = ("utilization", "memory_used", "memory_total", "power", "temperature")


class RunData:
    """The per-run tables' side of the store (mixed into `Store`)."""

    #: The time writes are stamped with instead of now (see `stamped`).
    _stamp: float | None = None

    @contextmanager
    def stamped(self, when: float) -> Iterator[None]:
        """Stamp this connection's writes with ``when``: a remote worker's journal, ingested
        later, keeps the times its records happened (a stale heartbeat stays stale)."""
        self._stamp = when
        try:
            yield
        finally:
            self._stamp = None

    def _now(self) -> float:
        return time.time() if self._stamp is None else self._stamp

    def heartbeat(self, run_id: str, step: int | None = None) -> None:
        """The worker is alive (and at ``step``): keeps the run from looking stalled."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE runs SET heartbeat_at = ?, step = coalesce(?, step) WHERE id = ?",
                [self._now(), None if step is None else int(step), run_id],
            )
        if cursor.rowcount == 0:
            self.get_run(run_id)  # raises "no run with id …"

    def adopt(self, run_id: str, pid: int, pgid: int, host: str) -> None:
        """The process that executes a running run takes it over from the one the launcher
        started (torchrun's rank 0 from torchrun): the sweep and a cancel then watch it."""
        with self._write() as db:
            changed = db.execute(
                "UPDATE runs SET pid = ?, pgid = ?, host = ? WHERE id = ? AND status = 'running'",
                [pid, pgid, host, run_id],
            ).rowcount
        if not changed:
            raise InvalidTransition(f"run {self.get_run(run_id).id} is no longer running; nothing to take over")

    def add_metrics(self, run_id: str, metrics: Iterable[tuple[str, int, float]]) -> None:
        """Record ``(key, step, value)`` rows in one transaction; a step recorded again replaces
        its value. NaN is kept (as NULL in SQLite, which has no NaN) and read back as NaN."""
        now = self._now()
        rows = []
        for item in metrics:
            try:
                key, step, value = item
                rows.append(
                    {
                        "run_id": run_id,
                        "key": _text(key, "metric key"),
                        "step": int(step),
                        "value": float(value),
                        "time": now,
                    }
                )
            except (TypeError, ValueError) as exc:
                raise HybtuiError(
                    f"a metric must be (key, step, value) with a text key, an integer step and a number; got {item!r}"
                ) from exc
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
                raise HybtuiError(
                    f"a result row needs {', '.join(RESULT_COLUMNS)}; {data!r} lacks {', '.join(missing)}"
                )
            try:
                value = float(data["value"])
            except (TypeError, ValueError) as exc:
                raise HybtuiError(f"result value must be a number; got {data['value']!r}") from exc
            records.append(
                {
                    "run_id": run_id,
                    "step": None if step is None else int(step),
                    **{c: data.get(c) for c in RESULT_COLUMNS},
                    "value": value,
                    "final": bool(final),
                }
            )
        if records:
            with self._existing_run(run_id):
                self._upsert("results", records, RESULT_KEY, ("value",))

    def _upsert(self, table: str, rows: list[dict[str, Any]], key: str, updated: tuple[str, ...]) -> None:
        columns = list(rows[0])
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updated)
        )
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
                return self._insert_event(run_id, level, str(message), self._now())
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
            db.table("artifacts").insert(
                {
                    "run_id": run_id,
                    "kind": _text(kind, "artifact kind"),
                    "path": stored,
                    "step": None if step is None else int(step),
                    "time": self._now(),
                }
            )

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
        return self.db.execute(
            "INSERT INTO events (run_id, time, level, message) VALUES (?, ?, ?, ?)", [run_id, now, level, message]
        ).lastrowid

    # -- reader side (the UI and the CLI) -------------------------------------------

    def metrics_since(self, run_id: str, after_id: int = 0, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
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
        rows = self._rows(
            "SELECT id, key, step, value, time FROM metrics WHERE id IN "
            "(SELECT max(id) FROM metrics WHERE run_id = ? GROUP BY key) ORDER BY key",
            [run_id],
        )
        return {row.pop("key"): _nan(row) for row in rows}

    def results(self, run_id: str, final_only: bool = True) -> list[dict[str, Any]]:
        """Result rows (the §3 columns plus step and final), in the order recorded."""
        sql = (
            "SELECT step, final, "
            + ", ".join(RESULT_COLUMNS)
            + " FROM results WHERE run_id = ?"
            + (" AND final" if final_only else "")
            + " ORDER BY id"
        )
        return [{**row, "final": bool(row["final"])} for row in self._rows(sql, [run_id])]

    def run_overview(self) -> list[RunSummary]:
        """Every run, newest first, with what a run list shows: its status columns, the
        configuration fields model / sampler / alpha / train / eval (``config_error`` says why
        they are missing where the stored configuration is not a JSON object), and ``figures``
        {bench: {(setting, metric): value}} of its final macro-averages (mAP, rank distance).

        One query: the configuration is read with json_extract once per run and the figures
        through a partial index, gathered per run as one JSON array, so 10,000 runs with millions
        of result rows take a fraction of a second, where a per-run read takes seconds."""
        config_fields = [
            "json_type(cfg) IS 'object'",
            *(f"json_extract(cfg, '$.{key}')" for key in ("model", "sampler", "alpha")),
            *(f"CASE WHEN json_type(cfg, '$.{key}') = 'array' THEN json_extract(cfg, '$.{key}') END" for key in SPECS),
        ]
        sql = (
            f"SELECT {', '.join(OVERVIEW_COLUMNS)}, {', '.join(config_fields)}, "
            "(SELECT json_group_array(json_array(h.bench, h.setting, h.metric, h.value)) "
            "FROM results h INDEXED BY idx_results_headline WHERE h.run_id = r.id "
            f"AND h.final = 1 AND h.query_lang = '{AVERAGE}' AND h.seen IS NULL "
            "AND h.metric IN ('map', 'rank_distance')) "
            # cfg: the configuration where it is JSON (a malformed one would fail the whole query)
            "FROM (SELECT *, CASE WHEN json_valid(config) THEN config END AS cfg FROM runs) r "
            "ORDER BY r.created_at DESC, r.id DESC"
        )
        runs = []
        for row in self._conn.execute(sql):
            columns = dict(zip(OVERVIEW_COLUMNS, row))
            figures: dict[str, dict[tuple[str, str], float]] = {}
            for bench, setting, metric, value in json.loads(row[-1]):
                figures.setdefault(bench, {})[setting, metric] = math.nan if value is None else value
            runs.append(
                RunSummary(
                    **{**columns, "status": RunStatus(columns["status"])},
                    **summary_config(*row[len(OVERVIEW_COLUMNS) : -1]),
                    figures=figures,
                )
            )
        return runs

    def add_telemetry(self, run_id: str, samples: Iterable[dict[str, Any]]) -> None:
        """Record GPU samples (``gpu``, ``time`` and any of TELEMETRY_FIELDS) in one transaction."""
        rows = [
            {"run_id": run_id, **{k: sample.get(k) for k in ("time", "gpu", *TELEMETRY_FIELDS)}} for sample in samples
        ]
        if rows:
            with self._existing_run(run_id) as db:
                db.table("telemetry").insert_all(rows)

    def telemetry(self, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        """GPU samples with id > after_id, oldest first (incremental, as ``events``)."""
        columns = ", ".join(("id", "time", "gpu", *TELEMETRY_FIELDS))
        return self._rows(
            f"SELECT {columns} FROM telemetry WHERE run_id = ? AND id > ? ORDER BY id", [run_id, after_id]
        )

    def events(self, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        """Event rows with id > after_id, oldest first (incremental like metrics_since)."""
        return self._rows(
            "SELECT id, time, level, message FROM events WHERE run_id = ? AND id > ? ORDER BY id", [run_id, after_id]
        )

    def artifacts(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Artifact rows with ``path`` resolved against the run directory."""
        sql, params = "SELECT id, kind, path, step, time FROM artifacts WHERE run_id = ?", [run_id]
        if kind is not None:
            sql, params = sql + " AND kind = ?", [*params, kind]
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
