"""Stored runs as files: CSV (every result row), JSON (runs with their configuration and
results) and a Markdown table of headline figures.

Exports leave the terminal, so everything stored in them is made inert for the format it
lands in; `hybtui runs export` and the app's export write the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from hybtui.formatting import figure
from hybtui.inert import csv_field, dumps, md_cell
from hybtui.results import HEADLINE, RESULT_COLUMNS, headline
from hybtui.runs.records import Run

RUN_COLUMNS = ("run_id", "run_name", "model", "sampler", "alpha", "step", "final")


def hybrid_alpha(run: Run) -> float | None:
    """α where it means something: a hybrid sampler's that trained. Mono, cross and zero-shot (0-step)
    runs mix no batches, whatever α their configuration holds."""
    if run.config_value("sampler") == "hybrid" and run.config_value("steps") != 0:
        return run.config_value("alpha")
    return None


def export_rows(runs: Sequence[Run], results: dict[str, list[dict]]) -> list[dict]:
    """One flat row per result of each run, prefixed with the run's identity."""
    rows = []
    for run in runs:
        for r in results[run.id]:
            rows.append(
                {
                    "run_id": run.id,
                    "run_name": run.name,
                    "model": run.config_value("model"),
                    "sampler": run.config_value("sampler"),
                    "alpha": hybrid_alpha(run),
                    "step": r.get("step"),
                    "final": bool(r.get("final")),
                    **{c: r[c] for c in RESULT_COLUMNS},
                }
            )
    return rows


def export(runs: Sequence[Run], results: dict[str, list[dict]], fmt: str) -> str:
    """Stored runs as csv (every result row), json (runs with config and results) or md
    (one line of headline figures per run and benchmark). Names and other stored text are
    inert in each: quoted and with visible control characters (csv), escaped (json), one
    cell with ``|`` and line breaks escaped (md)."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[*RUN_COLUMNS, *RESULT_COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: csv_field(v) for k, v in row.items()} for row in export_rows(runs, results))
        return out.getvalue()
    if fmt == "json":
        return dumps([{"run": dict(run), "results": results[run.id]} for run in runs], indent=1) + "\n"
    if fmt == "md":
        lines = [
            "| run | name | model | sampler | α | status | bench | mono mAP | cross mAP | multi mAP | rank dist. |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            head = headline(results[run.id])
            identity = [
                run.id,
                run.name or "",
                *(run.config_value(k) for k in ("model", "sampler")),
                hybrid_alpha(run),
                run.status,
            ]
            for bench in sorted({b for b, _, _ in head}) or ["–"]:
                cells = [figure(head.get((bench, setting, metric)), metric) for setting, metric in HEADLINE]
                lines.append("| " + " | ".join(md_cell(cell) for cell in [*identity, bench, *cells]) + " |")
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown export format {fmt}")
