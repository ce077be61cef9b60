"""One run as tables for people: its figures per language, the X×Y cross-lingual heat map,
seen / unseen averages, what `hybtui sample` drew, and the `hybtui runs show` summary.

These are the Rich renderables that the CLI prints and the app shows; every cell that
holds stored text (names, languages, configuration values) is inert. Runs side by side
are in compare.py; the same figures as files in export.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from hybtui import inert
from hybtui.formatting import figure, number
from hybtui.reporting.heat import METRIC_NAMES, cross_matrix, heat_table
from hybtui.results import AVERAGE, HEADLINE, POOL_ALL, ResultRow
from hybtui.runs.records import Run


def _index(rows: Iterable[ResultRow]) -> dict[tuple, ResultRow]:
    return {(r.bench, r.setting, r.query_lang, r.doc_lang, r.metric): r for r in rows if r.query_lang != AVERAGE}


def _heat(value: float | None) -> Text:
    """A cell coloured from red (0) through yellow to green (1)."""
    if value is None:
        return Text("–", style="dim")
    v = min(max(value, 0.0), 1.0)
    red, green = (255, int(510 * v)) if v < 0.5 else (int(510 * (1 - v)), 255)
    return Text(number(value), style=f"rgb({red},{green},80)")


def titled(title: str, table: Table) -> Group:
    """A title line above a table: rich wraps titles to the table's width, which is
    unreadable for narrow tables. Like every cell and header here that holds stored text
    (names, languages, configuration values), it is an inert Text: shown literally."""
    return Group(inert.text(title, style="italic"), table)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def language_table(rows: list[ResultRow], bench: str) -> Table:
    """One line per language: mono, cross (as query and as pool), multi and rank distance."""
    index = _index(rows)
    langs = sorted({r.query_lang for r in rows if r.bench == bench and r.query_lang != AVERAGE})
    seen = {r.query_lang: r.seen for r in rows if r.bench == bench and r.setting == "multi"}
    table = Table(title=inert.text(bench, style="table.title"), title_justify="left")
    for header in (
        "lang",
        "seen",
        "mono mAP",
        "mono R@1",
        "cross mAP X→Y",
        "cross mAP Y→X",
        "multi mAP",
        "multi R@10",
        "rank dist.",
    ):
        table.add_column(header, justify="left" if header in ("lang", "seen") else "right")

    def get(setting, q, d, metric):
        r = index.get((bench, setting, q, d, metric))
        return r.value if r else None

    def cross_mean(lang: str, as_query: bool) -> float | None:
        return _mean(
            [
                r.value
                for (b, s, q, d, m), r in index.items()
                if b == bench and s == "cross" and m == "map" and (q if as_query else d) == lang
            ]
        )

    for lang in langs:
        table.add_row(
            inert.text(lang),
            inert.text(seen.get(lang) or ""),
            _heat(get("mono", lang, lang, "map")),
            number(get("mono", lang, lang, "recall@1")),
            _heat(cross_mean(lang, True)),
            _heat(cross_mean(lang, False)),
            _heat(get("multi", lang, POOL_ALL, "map")),
            number(get("multi", lang, POOL_ALL, "recall@10")),
            number(get("multi", lang, POOL_ALL, "rank_distance"), 1),
        )
    avg = {
        (r.setting, r.metric): r.value for r in rows if r.bench == bench and r.query_lang == AVERAGE and r.seen is None
    }
    table.add_section()
    table.add_row(
        Text(AVERAGE, style="bold"),
        "",
        _heat(avg.get(("mono", "map"))),
        number(avg.get(("mono", "recall@1"))),
        _heat(avg.get(("cross", "map"))),
        _heat(avg.get(("cross", "map"))),
        _heat(avg.get(("multi", "map"))),
        number(avg.get(("multi", "recall@10"))),
        number(avg.get(("multi", "rank_distance")), 1),
    )
    return table


def cross_heatmap(rows: list[ResultRow], bench: str, metric: str = "map") -> Group:
    """The X×Y matrix of mono (diagonal) and cross-lingual `metric`, queries in rows, coloured
    over the range of its values, with that scale as a legend."""
    langs, values = cross_matrix((r.as_dict() for r in rows), bench, metric)
    name = METRIC_NAMES.get(metric, metric)
    return heat_table(f"{bench} {name}: query language ↓, candidate language →", langs, values)


def seen_summary(rows: list[ResultRow], bench: str) -> Table | None:
    """Macro-averages within seen / unseen / mixed groups, when training languages are known."""
    groups = sorted({r.seen for r in rows if r.bench == bench and r.query_lang == AVERAGE and r.seen})
    if not groups:
        return None
    table = Table(
        title=inert.text(f"{bench}: generalisation to languages not seen in training", style="table.title"),
        title_justify="left",
    )
    table.add_column("group")
    for header in ("mono mAP", "cross mAP", "multi mAP", "rank dist."):
        table.add_column(header, justify="right")
    avg = {(r.seen, r.setting, r.metric): r.value for r in rows if r.bench == bench and r.query_lang == AVERAGE}
    for group in groups:
        table.add_row(
            inert.text(group), *(figure(avg.get((group, setting, metric)), metric) for setting, metric in HEADLINE)
        )
    return table


def sample_summary(summary: dict, config) -> list:
    """What `hybtui sample` shows: batch types, datasets, mono languages, cross pairs."""
    head = inert.text(
        f"{summary['batches']} batches of {config.batch_size} · sampler {config.sampler}"
        + (f" (α = {config.alpha})" if config.sampler == "hybrid" else "")
        + f" · seed {config.seed}\n"
        + " · ".join(f"{t} {f:.1%}" for t, f in summary["type_fractions"].items())
        + " · datasets: "
        + ", ".join(f"{d} {n}" for d, n in summary["datasets"].items())
    )
    out: list = [head]
    if summary["mono_languages"]:
        mono = Table()
        for lang in summary["mono_languages"]:
            mono.add_column(inert.text(lang), justify="right")
        mono.add_row(*(str(n) for n in summary["mono_languages"].values()))
        out.append(titled("mono batches per language", mono))
    if summary["cross_pairs"]:
        langs = sorted(set(summary["cross_pairs"]) | {p for c in summary["cross_pairs"].values() for p in c})
        cross = Table()
        cross.add_column("")
        for lang in langs:
            cross.add_column(inert.text(lang), justify="right")
        for q in langs:
            row = summary["cross_pairs"].get(q, {})
            cross.add_row(inert.text(q), *(str(row.get(p, "")) if p != q else Text("·", style="dim") for p in langs))
        out.append(titled("cross pairs: query language ↓, passage language →", cross))
    return out


def run_summary(
    run: Run,
    stalled: bool,
    latest: dict[str, dict],
    events: list[dict],
    waiting: str | None = None,
    precision: str | None = None,
) -> list:
    """`hybtui runs show`: the run's identity, status (why it waits, where queued) and times,
    where it executes and in which precision, its error, configuration, latest metrics and last
    events; every stored text in it inert."""
    import time

    stamp = "%Y-%m-%d %H:%M:%S"
    head = Text.assemble(
        inert.text(run.id, style="bold"),
        " ",
        inert.text(run.name or ""),
        f" · {run.status}"
        + (" (stalled)" if stalled else "")
        + (f", {waiting}" if waiting else "")
        + f" · step {run.step}/{run.total_steps}",
    )
    if run.pid:
        head.append_text(inert.text(f" · pid {run.pid} on {run.host}"))
    if run.devices:
        head.append_text(inert.text(f" · {run.devices}"))
    if precision:
        head.append_text(inert.text(f" · precision {precision}"))
    head.append(
        "\n"
        + ", ".join(
            f"{k.removesuffix('_at')} {time.strftime(stamp, time.localtime(run[k]))}"
            for k in ("created_at", "started_at", "ended_at")
            if run[k]
        )
    )
    out: list = [head]
    if run.error:
        out.append(inert.text(run.error, style="red"))
    if run.config_error:
        out.append(inert.text(run.config_error, style="red"))
    if run.config:
        out.append(inert.text(" ".join(f"{k}={v}" for k, v in sorted(run.config.items()) if v is not None)))
    if latest:
        out.append(
            inert.text(
                "latest: " + ", ".join(f"{k} {m['value']:.4g} (step {m['step']})" for k, m in sorted(latest.items()))
            )
        )
    if events:
        lines = Text("events:", style="bold")
        for event in events:
            when = time.strftime(stamp, time.localtime(event["time"]))
            lines.append(f"\n{when} {event['level']:<7} ", style="red" if event["level"] == "error" else "dim")
            lines.append(inert.lines(event["message"]).replace("\n", "\n" + " " * 28))
        out.append(lines)
    return out


def gpu_readings(samples: list[dict]) -> list[str]:
    """The latest telemetry sample of each GPU, one line each (`hybtui runs show`)."""
    latest = {sample["gpu"]: sample for sample in samples}
    lines = []
    for gpu, sample in latest.items():
        parts = [
            f"{sample['utilization']:.0f} %" if sample["utilization"] is not None else None,
            f"{sample['memory_used']:.0f}/{sample['memory_total'] or 0:.0f} MiB"
            if sample["memory_used"] is not None
            else None,
            f"{sample['power']:.0f} W" if sample["power"] is not None else None,
            f"{sample['temperature']:.0f} °C" if sample["temperature"] is not None else None,
        ]
        lines.append(f"gpu {inert.visible(str(gpu))}: " + " · ".join(p for p in parts if p))
    return lines
