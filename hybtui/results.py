"""Result rows and the views everyone reads them through: columns, macro-averages, headline
figures, per-language figures, seen / unseen labels.

Torch-free and store-free, so the evaluator that writes rows, the store that keeps them,
the reports and the app that show them share one definition. Stored rows come back from
the store as dicts with these columns (plus ``step`` and ``final``); the views accept both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

#: The query_lang (and doc_lang) of a macro-average row.
AVERAGE = "avg"
#: The doc_lang of a multilingual row: one query against the pool of all languages.
POOL_ALL = "all"
#: The three evaluation settings: same language, every other language, the pool of all.
SETTINGS = ("mono", "cross", "multi")
#: (setting, metric) pairs shown as headline figures, in order.
HEADLINE = (("mono", "map"), ("cross", "map"), ("multi", "map"), ("multi", "rank_distance"))


@dataclass(frozen=True)
class ResultRow:
    """One number of an evaluation: a metric of a setting for a query language (and a
    candidate language, or the pool of all), with whether training saw those languages."""

    bench: str
    setting: str
    query_lang: str
    doc_lang: str
    metric: str
    value: float
    #: "seen" / "unseen" / "mixed" relative to the training languages; None when unknown.
    seen: str | None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ResultRow:
        """From a stored row (which carries extra columns such as step and final)."""
        return cls(**{name: row[name] for name in RESULT_COLUMNS})


RESULT_COLUMNS = tuple(f.name for f in fields(ResultRow))


def seen_label(langs: Iterable[str], seen: frozenset[str] | None) -> str | None:
    """ "seen" when training saw every one of ``langs``, "unseen" when none, else "mixed"."""
    if seen is None:
        return None
    flags = {lang in seen for lang in langs}
    return "seen" if flags == {True} else "unseen" if flags == {False} else "mixed"


def macro_averages(rows: list[ResultRow], by_seen: bool) -> list[ResultRow]:
    """Mean over languages (mono, multi) or ordered pairs (cross) of each metric, overall
    and, when training languages are known, within each seen / unseen / mixed group."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r.bench, r.setting, r.metric, None), []).append(r.value)
        if by_seen:
            groups.setdefault((r.bench, r.setting, r.metric, r.seen), []).append(r.value)
    return [
        ResultRow(bench, setting, AVERAGE, AVERAGE if setting != "multi" else POOL_ALL, metric, float(np.mean(v)), seen)
        for (bench, setting, metric, seen), v in groups.items()
    ]


def summary(rows: Iterable[ResultRow]) -> dict[str, dict[str, dict[str, float]]]:
    """Headline figures: {bench: {setting: {metric: macro-average}}}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        if r.query_lang == AVERAGE and r.seen is None:
            out.setdefault(r.bench, {}).setdefault(r.setting, {})[r.metric] = r.value
    return out


def headline(results: Sequence[Mapping]) -> dict[tuple[str, str, str], float]:
    """{(bench, setting, metric): macro-average} from a run's stored final result rows."""
    return {
        (r["bench"], r["setting"], r["metric"]): r["value"]
        for r in results
        if r["query_lang"] == AVERAGE and r["seen"] is None
    }


def per_language(results: Sequence[Mapping], bench: str, setting: str, metric: str = "map") -> dict[str, float]:
    """Per query language; for cross, the mean over its pairs. A value the store holds as NULL
    (a NaN recorded by an evaluation) is left out of the mean: it is no figure."""
    values: dict[str, list[float]] = {}
    for r in results:
        wanted = r["bench"] == bench and r["setting"] == setting and r["metric"] == metric
        if wanted and r["query_lang"] != AVERAGE and r["value"] is not None:
            values.setdefault(r["query_lang"], []).append(r["value"])
    return {lang: sum(v) / len(v) for lang, v in sorted(values.items())}


def seen_of(results: Sequence[Mapping], bench: str) -> dict[str, str | None]:
    """Query language → its seen label, from the multilingual rows."""
    return {
        r["query_lang"]: r["seen"]
        for r in results
        if r["bench"] == bench and r["setting"] == "multi" and r["query_lang"] != AVERAGE
    }
