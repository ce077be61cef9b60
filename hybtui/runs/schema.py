"""The store's schema, as named migrations: version N is reached by applying the first N.

Each migration is one function that says why it exists; `migrate` applies the missing ones in
one transaction, so a store opened by an older and a newer hybtui at once is migrated once.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from hybtui.results import AVERAGE


def _v1_tables(db: sqlite_utils.Database) -> None:
    """The initial schema: runs and the four tables of what they report."""
    db.table("runs").create(
        {
            "id": str,
            "name": str,
            "config": str,
            "status": str,
            "created_at": float,
            "started_at": float,
            "ended_at": float,
            "pid": int,
            "pgid": int,
            "host": str,
            "heartbeat_at": float,
            "exit_code": int,
            "error": str,
            "parent_id": str,
            "step": int,
            "total_steps": int,
        },
        pk="id",
        not_null={"config", "status", "created_at"},
        defaults={"step": 0},
    )
    per_run = {"foreign_keys": [("run_id", "runs", "id")], "pk": "id"}
    db.table("metrics").create(
        {"id": int, "run_id": str, "key": str, "step": int, "value": float, "time": float},
        not_null={"run_id", "key", "step", "time"},
        **per_run,
    )
    db.table("results").create(
        {
            "id": int,
            "run_id": str,
            "step": int,
            "bench": str,
            "setting": str,
            "query_lang": str,
            "doc_lang": str,
            "metric": str,
            "value": float,
            "seen": str,
            "final": bool,
        },
        not_null={"run_id", "bench", "setting", "query_lang", "doc_lang", "metric", "final"},
        **per_run,
    )
    db.table("events").create(
        {"id": int, "run_id": str, "time": float, "level": str, "message": str},
        not_null={"run_id", "time", "level", "message"},
        **per_run,
    )
    db.table("artifacts").create(
        {"id": int, "run_id": str, "kind": str, "path": str, "step": int, "time": float},
        not_null={"run_id", "kind", "path", "time"},
        **per_run,
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
    db.table("grids").create(
        {"id": str, "name": str, "created_at": float, "spec": str}, pk="id", not_null={"spec", "created_at"}
    )


def _v4_headline_index(db: sqlite_utils.Database) -> None:
    """A partial index over the final macro-averages only: the run list reads the headline
    figures of every run in one query without scanning millions of per-language rows."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_results_headline ON results (run_id, bench) "
        f"WHERE final = 1 AND query_lang = '{AVERAGE}' AND seen IS NULL"
    )


#: What identifies a result row (NULLs made comparable: SQLite's unique indexes treat them as distinct).
RESULT_KEY = "run_id, ifnull(step, -1), final, bench, setting, query_lang, doc_lang, metric, ifnull(seen, '')"


def _v5_unique_rows(db: sqlite_utils.Database) -> None:
    """One metric per (run, key, step) and one result per key: a recomputed step (a resumed
    run) replaces its rows. Stores written before keep the last value of each duplicate."""
    db.execute("DELETE FROM metrics WHERE id NOT IN (SELECT max(id) FROM metrics GROUP BY run_id, key, step)")
    db.execute(f"DELETE FROM results WHERE id NOT IN (SELECT max(id) FROM results GROUP BY {RESULT_KEY})")
    db.execute("CREATE UNIQUE INDEX idx_metrics_unique ON metrics (run_id, key, step)")
    db.execute(f"CREATE UNIQUE INDEX idx_results_unique ON results ({RESULT_KEY})")


def _v6_placement(db: sqlite_utils.Database) -> None:
    """Where a run executes: the GPUs it asked for (``gpu_count``) and holds while running
    (``gpus``, device ids as CUDA_VISIBLE_DEVICES lists them: the allocation is derived from
    the running runs, so a restart loses nothing and every end releases it), its backend
    (NULL: this host; ``slurm``), the backend's options (``placement``, JSON), the scheduler's
    job id, and how far the store has ingested a remote worker's journal (``journal_offset``).
    ``telemetry`` holds each GPU's samples over time (NVML: utilisation, memory, power, heat)."""
    runs = db.table("runs")
    for column, kind in (
        ("gpu_count", int),
        ("gpus", str),
        ("backend", str),
        ("placement", str),
        ("job_id", str),
        ("journal_offset", int),
    ):
        runs.add_column(column, kind)
    db.table("telemetry").create(
        {
            "id": int,
            "run_id": str,
            "time": float,
            "gpu": str,
            "utilization": float,
            "memory_used": float,
            "memory_total": float,
            "power": float,
            "temperature": float,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"run_id", "time", "gpu"},
    )
    db.table("telemetry").create_index(["run_id"])


#: Schema version N is reached by applying MIGRATIONS[:N] in order.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_tables,
    _v2_indexes,
    _v3_grids,
    _v4_headline_index,
    _v5_unique_rows,
    _v6_placement,
]
SCHEMA_VERSION = len(MIGRATIONS)
