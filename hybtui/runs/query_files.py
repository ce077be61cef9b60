"""A run's per-query scores on disk: ``runs/<id>/queries/final.npz`` and ``step-NNNNNNN.npz``.

One compressed NumPy archive per evaluation (`hybtui.evaluation.per_query` says what it
holds): numpy is what every torch-free layer already loads, an archive of plain arrays is
read without pickles and in milliseconds, and the long table loads into pandas as it is
(``pd.DataFrame({k[4:]: v for k, v in np.load(f).items() if k.startswith("col.")})``).
Each file is written whole into a temporary file, flushed and renamed over its name, so a
reader never sees a torn one; the worker writes it before the evaluation's rows reach the
store, so a run whose final results are recorded has its file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from hybtui.durable import write_atomically
from hybtui.errors import HybtuiError
from hybtui.evaluation.per_query import QueryTable
from hybtui.training.callbacks import Events

DIRECTORY = "queries"
FINAL = "final.npz"


def path_for(run_dir: Path, step: int, final: bool) -> Path:
    """Where an evaluation's per-query scores go: the final one, or periodic ones by step."""
    return Path(run_dir) / DIRECTORY / (FINAL if final else f"step-{step:07d}.npz")


def write(run_dir: Path, step: int, final: bool, table: QueryTable) -> Path:
    """Write one evaluation's table atomically (temporary file, fsync, rename, fsync the folder)."""
    target = path_for(run_dir, step, final)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, lambda handle: np.savez_compressed(handle, **table.to_arrays()))
    return target


def read(path: Path) -> QueryTable:
    """A stored table; a file that is not one is a clear error naming it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return QueryTable.from_arrays({k: archive[k] for k in archive.files}, str(path))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise HybtuiError(f"{path}: cannot read per-query results ({exc})") from exc


def read_final(run_dir: Path) -> QueryTable | None:
    """The final evaluation's per-query scores, or None where the run has none (an older
    hybtui evaluated it, or it has not finished)."""
    path = path_for(run_dir, 0, final=True)
    return read(path) if path.is_file() else None


class QueryFiles(Events):
    """The worker's listener that keeps each evaluation's per-query scores in the run's folder."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def on_query_scores(self, step: int, final: bool, table: QueryTable) -> None:
        if len(table):
            write(self.run_dir, step, final, table)
