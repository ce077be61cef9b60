"""Per-query scores of an evaluation: what a paired significance test over queries needs.

A run's headline figures are means over queries; two runs can only be tested against each
other query by query, so every evaluation also keeps each query's scores in one long
table — a row per (benchmark, setting, query language, candidate language, query id) and a
column per metric (NaN where the setting does not score it). The query id is the
benchmark's own (LAReQA's question id, shared by the parallel versions of a question), so
runs evaluated on different query subsets are aligned on the queries they share; the
multilingual pool (candidates per language) is kept too, since a multi score only compares
with one over the same pool.

Torch-free (numpy only): the evaluator builds tables, the runs layer stores them
(`to_arrays`, one ``.npz``) and the reports read them back (`from_arrays`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hybtui.errors import HybtuiError

#: The columns that name a row; every other column is a metric.
KEYS = ("bench", "setting", "query_lang", "doc_lang", "query_id")
#: Bump when the stored layout changes incompatibly.
FORMAT = 1


@dataclass(frozen=True)
class QueryTable:
    """Rows of per-query scores and, per benchmark, the candidates per language of its pool."""

    #: KEYS → string array, metric name → float64 array; all of one length
    columns: dict[str, np.ndarray]
    #: bench → {candidate language: number of candidates}
    pools: dict[str, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["query_id"])

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(name for name in self.columns if name not in KEYS)

    def select(self, mask: np.ndarray) -> QueryTable:
        return QueryTable({k: v[mask] for k, v in self.columns.items()}, self.pools)

    def where(self, **equal: str) -> QueryTable:
        """The rows whose key columns equal these values (``setting="mono"``)."""
        mask = np.ones(len(self), dtype=bool)
        for key, value in equal.items():
            mask &= self.columns[key] == value
        return self.select(mask)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no pickled objects): the columns, then the pools."""
        pool = [(b, lang, n) for b, langs in self.pools.items() for lang, n in langs.items()]
        return {
            "format": np.array(FORMAT),
            **{f"col.{name}": values for name, values in self.columns.items()},
            "pool.bench": np.array([b for b, _, _ in pool], dtype=str),
            "pool.lang": np.array([lang for _, lang, _ in pool], dtype=str),
            "pool.candidates": np.array([n for _, _, n in pool], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], where: str) -> QueryTable:
        """Back from `to_arrays`; ``where`` names the file in the error if it is not one."""
        try:
            if int(arrays["format"]) != FORMAT:
                raise HybtuiError(f"{where}: per-query format {int(arrays['format'])}, this hybtui reads {FORMAT}")
            columns = {k[4:]: np.asarray(arrays[k]) for k in arrays if k.startswith("col.")}
            pools: dict[str, dict[str, int]] = {}
            for b, lang, n in zip(arrays["pool.bench"], arrays["pool.lang"], arrays["pool.candidates"]):
                pools.setdefault(str(b), {})[str(lang)] = int(n)
        except (KeyError, ValueError, TypeError) as exc:
            raise HybtuiError(f"{where}: not a per-query results file ({exc})") from exc
        if set(KEYS) - set(columns) or len({len(v) for v in columns.values()}) > 1:
            raise HybtuiError(f"{where}: not a per-query results file (columns missing or of unequal length)")
        return cls(columns, pools)


def block(bench: str, setting: str, query_lang: str, doc_lang: str, query_ids: Sequence[str], scores) -> QueryTable:
    """The rows of one query language against one candidate language (or the pool)."""
    n = len(query_ids)
    keys = {"bench": bench, "setting": setting, "query_lang": query_lang, "doc_lang": doc_lang}
    columns = {k: np.full(n, v) for k, v in keys.items()}
    columns["query_id"] = np.array(query_ids, dtype=str).reshape(n)
    columns.update({name: np.asarray(values, dtype=np.float64) for name, values in scores.items()})
    return QueryTable(columns)


def concat(tables: Iterable[QueryTable]) -> QueryTable:
    """One table from several; a metric some lack is NaN in their rows."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return QueryTable({k: np.array([], dtype=str) for k in KEYS})
    names = list(dict.fromkeys(name for t in tables for name in t.columns))
    columns = {
        name: np.concatenate([t.columns[name] if name in t.columns else np.full(len(t), np.nan) for t in tables])
        for name in names
    }
    return QueryTable(columns, {b: p for t in tables for b, p in t.pools.items()})
