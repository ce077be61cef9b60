"""`hybtui runs ...` and `hybtui compare`: the stored runs listed, shown, stopped, resumed,
removed, pruned, exported and set side by side."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from hybtui.cli.common import JsonOption, StoreOption, open_store
from hybtui.errors import HybtuiError
from hybtui.formatting import age

runs_app = typer.Typer(no_args_is_help=True, help="Stored runs: list, show, cancel, resume, remove, export.")


#: The fields of each run `runs ls --json` prints (then whether it is stalled and why it waits).
LIST_KEYS = (
    "id",
    "name",
    "status",
    "pid",
    "created_at",
    "started_at",
    "ended_at",
    "step",
    "total_steps",
    "exit_code",
    "error",
    "parent_id",
    "config",
    "config_error",
)


@runs_app.command("ls")
def runs_ls(
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many, newest first (table default 50; --json: all).")
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first, with their status (stalled ones marked) and progress."""
    from hybtui import inert
    from hybtui.reporting.export import hybrid_alpha
    from hybtui.runs import launcher
    from hybtui.runs.records import is_stalled

    shown = limit if limit is not None or as_json else 50
    with open_store(store) as db:
        runs = db.list_runs(status=status, limit=None if shown is None else shown + 1)
        waiting = launcher.schedule(db)[1]
    more = shown is not None and len(runs) > shown
    runs = runs[:shown]
    if as_json:
        listed = [
            {**{k: r[k] for k in LIST_KEYS}, "stalled": is_stalled(r), "waiting": waiting.get(r.id)} for r in runs
        ]
        typer.echo(inert.dumps(listed, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    # Where runs execute, only where some run has GPUs or a scheduler job: a CPU box's list is unchanged.
    devices = any(r.devices for r in runs)
    table = Table("id", "name", "model", "sampler", "α", "status", "step", "age", *(["devices"] if devices else []))
    now = time.time()
    for r in runs:
        state = r.status + (" (stalled)" if is_stalled(r) else "") + (f", {waiting[r.id]}" if r.id in waiting else "")
        cells = (
            r.id,
            r.name or "",
            *(r.config_value(k) for k in ("model", "sampler")),
            hybrid_alpha(r),
            state,
            f"{r.step or 0}/{r.total_steps}",
            age(now - r.created_at),
            *([r.devices] if devices else []),
        )
        table.add_row(*(inert.text(cell) for cell in cells))
    Console().print(table)
    if more:
        typer.echo(f"(newest {shown} shown; --limit N for more)")


@runs_app.command("show")
def runs_show(run_id: str, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """A run's configuration, status, process, timings, latest metrics and results."""
    from hybtui.modeling import precision as precisions
    from hybtui.results import ResultRow
    from hybtui.runs import launcher
    from hybtui.runs.disk import run_disk_usage
    from hybtui.runs.records import is_stalled

    with open_store(store) as db:
        run = db.get_run(run_id)
        latest = db.latest_metrics(run.id)
        telemetry = db.telemetry(run.id)
        rows = db.results(run.id)
        events = db.events(run.id)
        precision, events = precisions.used(events), events[-10:]
        disk = run_disk_usage(db.run_dir(run.id))
        log_tail = _tail(launcher.log_path(db, run.id))
        waiting = launcher.schedule(db)[1].get(run.id)
    if as_json:
        from hybtui import inert

        typer.echo(
            inert.dumps(
                {
                    "run": {**run, "stalled": is_stalled(run), "waiting": waiting, "precision": precision},
                    "latest_metrics": latest,
                    "results": rows,
                    "events": events,
                    "disk": dataclasses.asdict(disk),
                    "gpus": {sample["gpu"]: sample for sample in telemetry},
                    "log_tail": log_tail,
                },
                indent=1,
            )
        )
        return
    from rich.console import Console

    from hybtui.reporting import tables as render

    out = Console()
    for part in render.run_summary(run, is_stalled(run), latest, events, waiting, precision):
        out.print(part)
    out.print(disk.describe())
    for line in render.gpu_readings(telemetry):
        out.print(line, markup=False, highlight=False)
    result_rows = [ResultRow.from_dict(r) for r in rows]
    for bench in sorted({r.bench for r in result_rows}):
        out.print(render.language_table(result_rows, bench))
    if log_tail:
        typer.echo(f"worker.log (last {len(log_tail)} lines):")
        typer.echo("\n".join(log_tail))


def _tail(path: Path, lines: int = 20, chunk: int = 16384) -> list[str]:
    """The last lines of a log, as inert text: control characters (terminal escapes) are
    shown escaped, never sent raw."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - chunk))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    from hybtui import inert

    return [inert.lines(line) for line in text.splitlines()[-lines:]]


@runs_app.command("cancel")
def runs_cancel(run_id: str, store: StoreOption = None) -> None:
    """Cancel a queued run, or ask a running one to checkpoint and stop (SIGTERM to its group)."""
    from hybtui.runs import launcher

    with open_store(store) as db:
        typer.echo(f"{db.get_run(run_id)['id']}: {launcher.cancel(db, run_id)}")


@runs_app.command("resume")
def runs_resume(run_id: str, store: StoreOption = None) -> None:
    """Continue a crashed or cancelled run from its last checkpoint, as the same run."""
    from hybtui.runs import launcher

    with open_store(store) as db:
        launcher.resume(db, run_id)
        run = db.get_run(run_id)
        typer.echo(f"{run.id}: {run.status}")


@runs_app.command("rm")
def runs_rm(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    store: StoreOption = None,
) -> None:
    """Delete runs: their rows and their directories (checkpoints included)."""
    from hybtui.runs import launcher

    with open_store(store) as db:
        runs = [db.get_run(r) for r in run_ids]
        if not yes and not typer.confirm(f"delete {len(runs)} run(s) and their checkpoints?"):
            raise typer.Exit(1)
        for run in runs:
            launcher.delete(db, run.id)
            typer.echo(f"deleted {run.id}")


PruneModelsOption = Annotated[bool, typer.Option("--models", help="Remove the final encoders too (results stay).")]


@runs_app.command("prune")
def runs_prune(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="Runs to prune (default: every finished or failed run).")
    ] = None,
    with_models: PruneModelsOption = False,
    store: StoreOption = None,
) -> None:
    """Free the disk of finished and failed runs: trainer states, older checkpoints, leftovers, caches."""
    from hybtui.formatting import human_bytes
    from hybtui.runs.disk import free_ended

    prunable = ("finished", "failed")
    with open_store(store) as db:
        runs = [db.get_run(r) for r in run_ids] if run_ids else [r for r in db.list_runs() if r.status in prunable]
        for run in runs:
            if run.status not in prunable:
                raise HybtuiError(
                    f"run {run.id} is {run.status}; only finished or failed runs are pruned "
                    f"(its checkpoint is its resume point)"
                )
        total = 0
        for run in runs:
            freed = free_ended(
                db.run_dir(run.id),
                with_models,
                lambda step, _path, run_id=run.id: db.remove_artifacts(run_id, "checkpoint", step),
            )
            total += freed
            typer.echo(f"{run.id}: freed {human_bytes(freed)}")
    typer.echo(f"total freed: {human_bytes(total)}")


@runs_app.command("export")
def runs_export(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs to export (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, json or md.")] = "csv",
    store: StoreOption = None,
) -> None:
    """Result rows of runs as CSV, JSON (with configs) or a Markdown table of headline figures."""
    from hybtui.reporting import export as report

    if fmt not in ("csv", "json", "md"):
        raise HybtuiError(f"--format must be csv, json or md (got '{fmt}')")
    with open_store(store) as db:
        runs = [db.get_run(r) for r in run_ids] if run_ids else db.list_runs()
        results = {run.id: db.results(run.id, final_only=False) for run in runs}
    sys.stdout.write(report.export(runs, results, fmt))


def compare_command(
    run_ids: Annotated[list[str], typer.Argument(help="2–6 run ids (or unique prefixes).")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs side by side: parameters that differ, headline metrics with deltas, per-language tables,
    and the paired significance of each run's differences from the first."""
    from hybtui.reporting import compare
    from hybtui.reporting import significance as stats
    from hybtui.results import headline

    if not 2 <= len(run_ids) <= 6:
        raise HybtuiError(f"compare takes 2 to 6 runs (got {len(run_ids)})")
    with open_store(store) as db:
        runs = [db.get_run(r) for r in run_ids]
        results = {run.id: db.results(run.id) for run in runs}
        dirs = [db.run_dir(run.id) for run in runs]
    try:
        tested, unavailable = stats.for_runs(dirs, [run.id for run in runs]), None
    except stats.MissingQueryScores as exc:
        tested, unavailable = None, str(exc)
    if as_json:
        from hybtui import inert

        typer.echo(
            inert.dumps(
                {
                    "runs": [run.id for run in runs],
                    "differing_parameters": compare.differing_parameters([run.config for run in runs]),
                    "headline": {
                        run.id: {" ".join(k): v for k, v in headline(results[run.id]).items()} for run in runs
                    },
                    "significance": {"unavailable": unavailable}
                    if tested is None
                    else {"comparisons": [c.as_dict() for c in tested.comparisons], "notes": tested.notes},
                },
                indent=1,
            )
        )
        return
    from rich.console import Console

    from hybtui import inert

    out = Console()
    for part in compare.comparison(runs, results):
        out.print(part)
    if tested is None:  # one line, however long its paths: the terminal wraps it
        out.print(inert.text(unavailable, style="yellow"), soft_wrap=True)
        return
    for part in compare.significance_table(tested, runs[0].id):
        out.print(part)
