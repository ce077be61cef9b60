"""Runs side by side, as `hybtui compare` prints them and the app's compare screen shows
them: the parameters that differ, headline figures with deltas against a baseline run,
mAP per query language for each setting, short labels that tell the runs apart, and the
X×Y difference between two runs — all over what the runs were evaluated on in common.

Its own module because a comparison is read against a reference run (deltas, coloured
by whether they improve), which neither the single-run tables nor the exports do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from hybtui import inert
from hybtui.formatting import figure
from hybtui.reporting.heat import METRIC_NAMES, cross_matrix, heat_table
from hybtui.reporting.scope import restrict, shared_scope
from hybtui.reporting.significance import ALPHA, Significance
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
    """A run's figure and, where it differs from the baseline's, the difference: green
    where it improves, red where it worsens."""
    if value is None:
        return Text("–", style="dim")
    text = Text(figure(value, metric))
    if base is not None and value != base:
        diff = value - base
        good = diff < 0 if metric == LOWER_IS_BETTER else diff > 0
        text.append(" " + figure(diff, metric, signed=True), style="green" if good else "red")
    return text


def _describe(config: dict, key: str) -> str:
    """One differing parameter of a run as a label part (``hybrid α.5``, ``s42``, ``tiny``)."""
    value = config.get(key)
    if key == "sampler":
        if config.get("steps") == 0:
            return "zero-shot"
        alpha = config.get("alpha")
        return f"hybrid α{alpha:g}".replace("α0.", "α.") if value == "hybrid" and alpha is not None else str(value)
    if isinstance(value, list):
        return "+".join(map(str, value))
    return {"seed": "s", "model": ""}.get(key, f"{key}=") + str(value)


#: What tells runs apart in a label, most telling first.
LABEL_KEYS = ("sampler", "alpha", "seed", "model", "lr", "batch_size", "steps", "train")


def short_labels(runs: Sequence[Run]) -> list[str]:
    """A short, distinct label per run: its name where set and no other run has it, else
    what differs between the runs (sampler and α, seed, model, …); any label still shared
    gets the id's random suffix (``mono s1 ·a1f3``)."""
    names = [run.name or "" for run in runs]
    named = [bool(name) and names.count(name) == 1 for name in names]
    unnamed = [run.config for run, has in zip(runs, named) if not has]
    differ = [k for k in LABEL_KEYS if k in differing_parameters(unnamed)]
    if "alpha" in differ and "sampler" not in differ:
        differ[differ.index("alpha")] = "sampler"  # α is shown with its sampler
    keys = list(dict.fromkeys(k for k in differ if k != "alpha")) or ["sampler"]
    labels = [
        name if has else " ".join(_describe(run.config, k) for k in keys) for run, name, has in zip(runs, names, named)
    ]
    return [
        label if labels.count(label) == 1 else f"{label} ·{run.id.rsplit('-', 1)[-1]}"
        for run, label in zip(runs, labels)
    ]


def comparison(
    runs: list[Run], results: dict[str, list[dict]], baseline: int = 0, labels: Sequence[str] | None = None
) -> list:
    """`hybtui compare` (columns named by run id, deltas against the first run) and the app's
    compare screen (columns by ``labels``, a chosen ``baseline``): a warning where the runs'
    evaluations differ, the differing parameters, headline figures with deltas, and
    per-language mAP per setting — over what every run was evaluated on."""
    ids = [run.id for run in runs]
    names = list(labels or ids)
    scope = shared_scope([results[i] for i in ids], names)
    rows = {i: restrict(results[i], scope) for i in ids}
    out: list = []
    warning = scope.warning()
    if warning:
        out.append(inert.text("⚠ " + warning, style="bold yellow"))
    unreadable = [run.id for run in runs if run.config_error]
    if unreadable:
        out.append(inert.text(f"{', '.join(unreadable)}: {UNREADABLE}", style="red"))
    out.append(_parameters(runs, names, with_ids=labels is not None))
    columns = [inert.text(name) for name in names]
    heads = [headline(rows[i]) for i in ids]
    head = _table("bench", "figure", *columns)
    for bench in scope.benches:
        for setting, metric in HEADLINE:
            values = [h.get((bench, setting, metric)) for h in heads]
            base = values[baseline]
            head.add_row(inert.text(bench), f"{setting} {metric}", *(_delta(v, base, metric) for v in values))
    out.append(titled(f"headline figures (Δ against {names[baseline]})", head))
    for bench in scope.benches:
        seen = seen_of(rows[ids[baseline]], bench)
        for setting in SETTINGS:
            per_run = [per_language(rows[i], bench, setting) for i in ids]
            table = _table("lang", "seen", *columns)
            for lang in sorted({lang for p in per_run for lang in p}):
                values = [p.get(lang) for p in per_run]
                cells = (_delta(v, values[baseline]) for v in values)
                table.add_row(inert.text(lang), inert.text(seen.get(lang) or ""), *cells)
            out.append(titled(f"{bench} {setting} mAP per query language", table))
    return out


def _parameters(runs: Sequence[Run], names: Sequence[str], with_ids: bool) -> Group:
    """The configuration keys that differ (and, where columns are labels, each run's id)."""
    differ = differing_parameters([{**run.config, "name": run.name} for run in runs])
    params = _table("parameter", *(inert.text(name) for name in names))
    if with_ids:
        params.add_row("id", *(inert.text(run.id) for run in runs))
    for key, values in differ.items():
        params.add_row(inert.text(key), *(inert.text(v if isinstance(v, str) else json.dumps(v)) for v in values))
    return titled("parameters that differ" if differ else "no parameter differs", params)


def difference_heatmap(base: Sequence[dict], other: Sequence[dict], bench: str, metric: str, names: tuple[str, str]):
    """``other`` minus ``base`` over the X×Y languages both were evaluated on (blue: the
    other run is better), coloured over the largest difference either way."""
    langs, base_values = cross_matrix(base, bench, metric)
    other_langs, other_values = cross_matrix(other, bench, metric)
    shared = [lang for lang in langs if lang in other_langs]
    diff = {
        pair: other_values[pair] - value
        for pair, value in base_values.items()
        if pair in other_values and pair[0] in shared and pair[1] in shared
    }
    title = f"{bench} {METRIC_NAMES.get(metric, metric)} Δ: {names[1]} − {names[0]} (query ↓, candidate →)"
    return heat_table(title, shared, diff, diverging=True)


def p_value(p: float) -> str:
    """A p-value to two significant digits (``<0.0001`` below that)."""
    return "–" if math.isnan(p) else "<0.0001" if p < 1e-4 else f"{p:.2g}"


def significance_table(sig: Significance, base: str) -> list:
    """The paired tests of each run against ``base`` as a table, with what was left out."""
    out: list = [inert.text("⚠ " + note, style="bold yellow") for note in sig.notes]
    table = _table("run", "bench", "figure", "lang", "n", "Δ", "95 % CI", "p rand", "p t", "p Holm")
    for c in sig.comparisons:
        metric = f"{c.setting} {c.metric}"
        ci = f"[{figure(c.ci_low, c.metric, signed=True)}, {figure(c.ci_high, c.metric, signed=True)}]"
        holm = Text(p_value(c.p_randomization_holm) + (" *" if c.significant else ""))
        cells = (figure(c.diff, c.metric, signed=True), ci, p_value(c.p_randomization), p_value(c.p_t))
        table.add_row(inert.text(c.run), inert.text(c.bench), metric, c.query_lang, str(c.n), *cells, holm)
    title = (
        f"significance: Δ = run − {base}, paired over questions (95 % t-interval; p: sign-flip randomization, "
        f"paired t; Holm over {len(sig.comparisons)}, * below {ALPHA:g})"
    )
    return [*out, titled(title, table)]
