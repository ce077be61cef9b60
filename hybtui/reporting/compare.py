"""Runs side by side, as `hybtui compare` prints them and the app's compare screen shows
them: the parameters that differ, headline figures with deltas against the first run,
and mAP per query language for each setting.

Its own module because a comparison is read against a reference run (deltas, coloured
by whether they improve), which neither the single-run tables nor the exports do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from hybtui import inert
from hybtui.formatting import figure
from hybtui.reporting.tables import titled
from hybtui.results import HEADLINE, SETTINGS, headline, per_language, seen_of
from hybtui.runs.records import UNREADABLE, Run

#: The headline metric where a decrease is the improvement (language bias).
LOWER_IS_BETTER = "rank_distance"


def differing_parameters(configs: Sequence[dict]) -> dict[str, list[Any]]:
    """Only the configuration keys whose values differ between the runs."""
    keys = sorted({k for c in configs for k in c})
    return {k: [c.get(k) for c in configs] for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1}


def _table(*headers: str | Text) -> Table:
    """A table with these column headers (rich's constructor takes only strings, which are markup)."""
    table = Table()
    for header in headers:
        table.add_column(header)
    return table


def _delta(value: float | None, base: float | None, metric: str = "map") -> Text:
    """A run's figure and, where it differs from the first run's, the difference: green
    where it improves, red where it worsens."""
    if value is None:
        return Text("–", style="dim")
    text = Text(figure(value, metric))
    if base is not None and value != base:
        diff = value - base
        good = diff < 0 if metric == LOWER_IS_BETTER else diff > 0
        text.append(" " + figure(diff, metric, signed=True), style="green" if good else "red")
    return text


def comparison(runs: list[Run], results: dict[str, list[dict]]) -> list:
    """`hybtui compare`: differing parameters, headline figures with deltas against the
    first run, and per-language mAP per setting."""
    ids = [run.id for run in runs]
    columns = [inert.text(run_id) for run_id in ids]
    out: list = []
    differ = differing_parameters([{**run.config, "name": run.name} for run in runs])
    params = _table("parameter", *columns)
    for key, values in differ.items():
        params.add_row(inert.text(key), *(inert.text(v if isinstance(v, str) else json.dumps(v)) for v in values))
    unreadable = [run.id for run in runs if run.config_error]
    if unreadable:
        out.append(inert.text(f"{', '.join(unreadable)}: {UNREADABLE}", style="red"))
    out.append(titled("parameters that differ" if differ else "no parameter differs", params))
    heads = [headline(results[i]) for i in ids]
    benches = sorted({b for h in heads for b, _, _ in h})
    head = _table("bench", "figure", *columns)
    for bench in benches:
        for setting, metric in HEADLINE:
            values = [h.get((bench, setting, metric)) for h in heads]
            head.add_row(inert.text(bench), f"{setting} {metric}", *(_delta(v, values[0], metric) for v in values))
    out.append(titled(f"headline figures (Δ against {ids[0]})", head))
    for bench in benches:
        seen = seen_of(results[ids[0]], bench)
        for setting in SETTINGS:
            per_run = [per_language(results[i], bench, setting) for i in ids]
            langs = sorted({lang for p in per_run for lang in p})
            table = _table("lang", "seen", *columns)
            for lang in langs:
                values = [p.get(lang) for p in per_run]
                table.add_row(
                    inert.text(lang), inert.text(seen.get(lang) or ""), *(_delta(v, values[0]) for v in values)
                )
            out.append(titled(f"{bench} {setting} mAP per query language", table))
    return out
