"""A grid's report: the paper's Table 1 per sampler (mean ± sd over seeds), hybrid's deltas
against every other sampler, seen / unseen averages and per-language figures.

Kept apart from planning the grid (runs/grid.py): the report only reads the grid's runs
and their stored results, so the app and `hybtui grids report` build it without loading
anything a grid needs to start. It is written beside the grid as report.json (the
figures) and report.md (the same as a person reads it).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybtui.durable import write_atomically
from hybtui.formatting import figure
from hybtui.inert import md_cell
from hybtui.results import AVERAGE, HEADLINE, SETTINGS, headline, per_language, seen_of
from hybtui.runs.grid import grid_runs, is_done
from hybtui.runs.records import Run
from hybtui.runs.store import Store

#: Language resource classes of Joshi et al. (2020), "The State and Fate of Linguistic
#: Diversity"; classes 0–3 are counted as low-resource here.
RESOURCE_CLASS = {
    "ar": 5,
    "de": 5,
    "en": 5,
    "es": 5,
    "fr": 5,
    "ja": 5,
    "zh": 5,
    "fa": 4,
    "fi": 4,
    "hi": 4,
    "ko": 4,
    "ru": 4,
    "tr": 4,
    "vi": 4,
    "bn": 3,
    "el": 3,
    "id": 3,
    "th": 3,
    "sw": 2,
    "yo": 2,
    "te": 1,
}
LOW_RESOURCE_MAX_CLASS = 3

#: (setting, metric, column heading) of the paper's Table 1 plus language bias: the headline figures.
TABLE1 = tuple(
    (setting, metric, heading)
    for (setting, metric), heading in zip(HEADLINE, ("mono mAP", "cross mAP", "multi mAP", "rank distance"))
)
#: Whether training saw a macro-average's languages (cross: mixed = one of the two).
SEEN_GROUPS = ("seen", "unseen", "mixed")


def _mean_sd(values: list[float]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation over seeds (none from one seed), with their count."""
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def _mean(values: list[float]) -> float | None:
    return _mean_sd(values)["mean"]


def _resource(lang: str) -> str:
    klass = RESOURCE_CLASS.get(lang)
    return "unknown" if klass is None else "low" if klass <= LOW_RESOURCE_MAX_CLASS else "high"


def _wall(run: Run | None) -> float | None:
    if not run or not run.started_at or not run.ended_at:
        return None
    return run.ended_at - run.started_at


def build_report(store: Store, grid_id: str) -> dict[str, Any]:
    """The grid's figures: Table 1 per sampler (mean ± sd over seeds), per-language
    mono / cross / multi mAP and rank distance with seen / unseen / low-resource marked,
    seen-vs-unseen averages, and hybrid's deltas against every other sampler."""
    grid = store.get_grid(grid_id)
    pairs = grid_runs(store, grid)
    labels = list(dict.fromkeys(cell["label"] for cell, _ in pairs))
    results = {cell["run_id"]: store.results(run.id) if run else [] for cell, run in pairs}
    by_label = {
        label: [results[cell["run_id"]] for cell, _ in pairs if cell["label"] == label and results[cell["run_id"]]]
        for label in labels
    }
    status = {
        label: [run.status if run else "deleted" for cell, run in pairs if cell["label"] == label] for label in labels
    }
    out: dict[str, Any] = {
        "grid": grid["id"],
        "name": grid["name"],
        "options": grid["spec"]["options"],
        "runs": _run_entries(pairs),
        "status": status,
        "benchmarks": {},
    }
    for bench in sorted({r["bench"] for rows in results.values() for r in rows}):
        seen: dict[str, str | None] = {}
        for rows in results.values():
            seen.update(seen_of(rows, bench))
        out["benchmarks"][bench] = _bench_report(bench, by_label, seen)
    return out


def _bench_report(bench: str, by_label: dict[str, list[list[dict]]], seen: dict[str, str | None]) -> dict[str, Any]:
    """One benchmark's part of the report, from each sampler's runs' result rows."""
    heads = {label: [headline(rows) for rows in runs] for label, runs in by_label.items()}
    table1 = {
        label: {
            heading: _mean_sd([h[bench, setting, metric] for h in hs if (bench, setting, metric) in h])
            for setting, metric, heading in TABLE1
        }
        for label, hs in heads.items()
    }
    languages = {
        lang: {
            "seen": seen[lang],
            "resource": _resource(lang),
            "samplers": {
                label: {
                    heading: _mean(
                        [v for rows in runs if (v := per_language(rows, bench, setting, metric).get(lang)) is not None]
                    )
                    for setting, metric, heading in TABLE1
                }
                for label, runs in by_label.items()
            },
        }
        for lang in sorted(seen)
    }
    groups = {
        label: {
            group: {
                setting: _mean(
                    [
                        r["value"]
                        for rows in runs
                        for r in rows
                        if r["bench"] == bench
                        and r["query_lang"] == AVERAGE
                        and r["seen"] == group
                        and r["setting"] == setting
                        and r["metric"] == "map"
                    ]
                )
                for setting in SETTINGS
            }
            for group in SEEN_GROUPS
        }
        for label, runs in by_label.items()
    }
    return {"table1": table1, "languages": languages, "seen_groups": groups, "deltas": _deltas(table1)}


def _deltas(table1: dict[str, dict[str, dict]]) -> dict[str, dict[str, float | None]]:
    """Each hybrid sampler's mean minus each other sampler's, per Table 1 heading."""
    deltas = {}
    for hybrid in (label for label in table1 if label.startswith("hybrid")):
        for other in (label for label in table1 if not label.startswith("hybrid")):
            deltas[f"{hybrid} − {other}"] = {
                heading: (
                    table1[hybrid][heading]["mean"] - table1[other][heading]["mean"]
                    if table1[hybrid][heading]["mean"] is not None and table1[other][heading]["mean"] is not None
                    else None
                )
                for _, _, heading in TABLE1
            }
    return deltas


def language_label(lang: str, info: dict[str, Any]) -> str:
    """The language marked as in the report: † unseen in training, ‡ low-resource."""
    return lang + ("†" if info["seen"] == "unseen" else "") + ("‡" if info["resource"] == "low" else "")


def to_markdown(rep: dict[str, Any]) -> str:
    """The report as Markdown: Table 1, hybrid's deltas, seen/unseen, per language. Stored
    text (names, labels, options) goes through ``md_cell``: it cannot end a cell or a line."""
    opts = rep["options"]
    lines = [
        f"# {md_cell(rep['name'])} — grid {md_cell(rep['grid'])}",
        "",
        f"Model `{md_cell(opts['model'])}`, trained on `{md_cell(' '.join(opts['train']))}` "
        f"for {opts['steps']} steps "
        f"at batch {opts['batch_size']}, lr {opts['lr']:g}, seeds {', '.join(map(str, opts['seeds']))}; "
        f"evaluated on `{md_cell(' '.join(opts['eval']))}`"
        + (
            f" ({opts['final_eval_max_queries']} queries per language)."
            if opts["final_eval_max_queries"]
            else " (all queries)."
        ),
        "",
    ]
    walls = [r["wall_s"] for r in rep["runs"] if r["wall_s"]]
    unfinished = [
        md_cell(f"{r['label']} seed {r['seed']}: {r['status']}") for r in rep["runs"] if r["status"] != "finished"
    ]
    if walls:
        lines += [f"Run time: {sum(walls) / 60:.1f} min over {len(walls)} runs.", ""]
    if unfinished:
        lines += ["Not finished: " + "; ".join(unfinished) + ".", ""]
    for bench, b in rep["benchmarks"].items():
        lines += _bench_markdown(bench, b)
    return "\n".join(lines)


def _bench_markdown(bench: str, b: dict[str, Any]) -> list[str]:
    """One benchmark's tables: Table 1, deltas, seen / unseen groups, per query language."""
    headings = [h for _, _, h in TABLE1]
    lines = [f"## {md_cell(bench)}", "", *_head("sampler", headings)]
    lines += [
        _row(label, [figure(row[h]["mean"], h, row[h]["sd"]) for h in headings]) for label, row in b["table1"].items()
    ]
    if b["deltas"]:
        lines += [
            "",
            "Hybrid against each other sampler (rank distance: lower is better):",
            "",
            *_head("delta", headings),
        ]
        lines += [_row(name, [figure(row[h], h, signed=True) for h in headings]) for name, row in b["deltas"].items()]
    groups = [
        g for g in SEEN_GROUPS if any(v is not None for row in b["seen_groups"].values() for v in row[g].values())
    ]
    if groups:
        lines += [
            "",
            "mAP by whether the languages were seen in training (cross: mixed = one of the two):",
            "",
            *_head("sampler", [f"{g} {s}" for g in groups for s in SETTINGS]),
        ]
        lines += [
            _row(label, [figure(row[g][s], "map") for g in groups for s in SETTINGS])
            for label, row in b["seen_groups"].items()
        ]
    lines += [
        "",
        "Per query language (multi mAP / rank distance; † unseen in training, ‡ low-resource):",
        "",
        *_head("language", list(map(md_cell, b["table1"]))),
    ]
    for lang, info in b["languages"].items():
        lines.append(
            _row(
                language_label(lang, info),
                [
                    f"{figure(s['multi mAP'], 'map')} / {figure(s['rank distance'], 'rank')}"
                    for s in info["samplers"].values()
                ],
            )
        )
    return [*lines, ""]


def _head(first: str, columns: Sequence[str]) -> list[str]:
    """A Markdown table's header and rule: the first column left, the figures right-aligned."""
    return ["| " + first + " | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]


def _row(first: str, cells: Sequence[str]) -> str:
    """A table line: ``first`` is stored text (a sampler's label, a language), made inert."""
    return f"| {md_cell(first)} | " + " | ".join(cells) + " |"


def write_report(store: Store, grid_id: str) -> tuple[dict[str, Any], Path]:
    """Build the report and write ``report.md`` and ``report.json`` into ``grids/<id>/``."""
    rep = build_report(store, grid_id)
    return rep, publish(store, rep)


def publish(store: Store, rep: dict[str, Any]) -> Path:
    """Write a built report beside its grid, each file atomically: several writers at once
    (the last worker, the app, the CLI) each switch in a whole file, never a torn one."""
    directory = store.path / "grids" / rep["grid"]
    directory.mkdir(parents=True, exist_ok=True)
    markdown, report = to_markdown(rep).encode(), (json.dumps(rep, indent=1) + "\n").encode()
    write_atomically(directory / "report.md", lambda handle: handle.write(markdown))
    write_atomically(directory / "report.json", lambda handle: handle.write(report))  # last: it tells what they hold
    return directory


def is_stale(store: Store, grid: dict[str, Any], pairs: list[tuple[dict, Run | None]]) -> bool:
    """Whether the grid has ended and its report is missing or tells other ends than its runs
    now have (written mid-grid, or before a resumed run ended again). Judged by what the report
    holds, not by clocks: a run's end may be stamped by another host's."""
    if not is_done(pairs):
        return False
    directory = store.path / "grids" / grid["id"]
    try:
        written = json.loads((directory / "report.json").read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    ends = [(r.get("run_id"), r.get("status"), r.get("wall_s")) for r in written if isinstance(r, dict)]
    return not (directory / "report.md").exists() or ends != [
        (r["run_id"], r["status"], r["wall_s"]) for r in _run_entries(pairs)
    ]


def _run_entries(pairs: list[tuple[dict, Run | None]]) -> list[dict[str, Any]]:
    """Each cell with its run's status (``deleted`` where it is gone) and wall time."""
    return [{**cell, "status": run.status if run else "deleted", "wall_s": _wall(run)} for cell, run in pairs]


def write_if_ended(
    store: Store, grid: dict[str, Any], pairs: list[tuple[dict, Run | None]] | None = None
) -> Path | None:
    """Write the report of a grid that has ended unless it is already current; its directory if
    written (``pairs``: its cells and runs, where the caller has read them already)."""
    if not is_stale(store, grid, grid_runs(store, grid) if pairs is None else pairs):
        return None
    return write_report(store, grid["id"])[1]


def write_for_run(store: Store, run_id: str) -> list[Path]:
    """What the worker of ``run_id`` does once its run has ended: write the report of each grid
    the run belongs to that has now ended (the last worker of a grid to end sees it so)."""
    grids = [g for g in store.list_grids() if any(c["run_id"] == run_id for c in g["spec"]["cells"])]
    return [path for grid in grids if (path := write_if_ended(store, grid)) is not None]
