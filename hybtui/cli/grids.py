"""`hybtui reproduce` and `hybtui grids ...`: the paper's comparison planned and queued as
a grid of runs, then watched and reported."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hybtui.cli.common import DataDirOption, JsonOption, PrecisionOption, StoreOption, open_store
from hybtui.cli.placement import BackendOption, CpusOption, MemOption, PartitionOption, TimeOption
from hybtui.formatting import age

if TYPE_CHECKING:
    from hybtui.runs.grid import GridPlan
    from hybtui.runs.records import Placement

grids_app = typer.Typer(no_args_is_help=True, help="Grids of runs launched together (hybtui reproduce): list, report.")

QuickOption = Annotated[
    bool,
    typer.Option(
        "--quick",
        help="A reduced budget that finishes in minutes on a CPU; a smoke test, "
        "so its runs keep no model (results only).",
    ),
]
GridEvalOption = Annotated[
    str | None, typer.Option("--eval", help="Benchmarks (default xquad-r; --quick xquad-r:en,zh,th).")
]
GridMaxParallelOption = Annotated[int | None, typer.Option(help="How many runs of this store may run at once (kept).")]
GridDetachOption = Annotated[
    bool, typer.Option("--detach", help="Queue the grid and return; report later with `hybtui grids report`.")
]


def reproduce_command(
    quick: QuickOption = False,
    model: Annotated[str, typer.Option(help="Registry name, Hugging Face id or local checkpoint.")] = "me5-small",
    alpha: Annotated[list[float] | None, typer.Option("--alpha", help="Hybrid α; repeat for a sweep.")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help="Seed; repeat for mean ± spread.")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps per trained run (default 150; --quick 30).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default 32; --quick 16).")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate, the same for every sampler.")] = 3e-5,
    train: Annotated[str | None, typer.Option(help="Training data (default mlqa-r; --quick mlqa-r:en,de,zh).")] = None,
    eval_spec: GridEvalOption = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    precision: PrecisionOption = "auto",
    max_parallel: GridMaxParallelOption = None,
    backend: BackendOption = None,
    partition: PartitionOption = None,
    time: TimeOption = None,
    mem: MemOption = None,
    cpus: CpusOption = None,
    detach: GridDetachOption = False,
    data_dir: DataDirOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """The paper's comparison: zero-shot, X-X-mono, X-Y and hybrid runs, then a report."""
    from hybtui.cli import placement
    from hybtui.cli.console import stderr, watch_grid
    from hybtui.data import sources
    from hybtui.runs import grid as reproduce
    from hybtui.runs import launcher
    from hybtui.runs.store import store_path

    root = sources.data_dir_from_env(data_dir)
    if max_parallel is not None:
        launcher.check_max_parallel(max_parallel)
    path = store_path(store)
    remote = placement.placement(path, backend, None, partition=partition, time=time, mem=mem, cpus=cpus)
    grid = reproduce.plan(
        quick=quick,
        model=model,
        alphas=alpha or [0.5],
        seeds=seed or [42],
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        train=_csv_specs(train),
        eval=_csv_specs(eval_spec),
        device=device,
        precision=precision,
        data_dir=root,
    )
    grid_id = _queue_grid(path, grid, model, quick, max_parallel, remote)
    if detach:
        typer.echo(json.dumps({"grid": grid_id}) if as_json else grid_id)
        return
    try:
        watch_grid(path, grid_id, enabled=not as_json or stderr.is_terminal)
    except KeyboardInterrupt:
        stderr.print(f"stopped watching; the runs go on. Report: `hybtui grids report {grid_id}`")
        raise typer.Exit(130) from None
    _print_grid_report(path, grid_id, as_json)


def _queue_grid(
    path: Path, grid: GridPlan, model: str, quick: bool, max_parallel: int | None, remote: Placement | None
) -> str:
    """The grid's runs queued in the store, with what to expect said first: its size and
    wall time. A store that cannot take the grid is refused before anything is printed."""
    from hybtui.cli.console import stderr
    from hybtui.runs import grid as reproduce
    from hybtui.runs import launcher

    expected = grid.expected_seconds()
    with open_store(path) as db:
        db.check_writable()
        stderr.print(
            f"{grid.name}: {len(grid.configs)} runs on {model} — expected wall time about "
            f"{expected / 60:.0f} min one run at a time (me5-small rates measured on a 2-core CPU; "
            f"scale for your hardware)"
            + ("; a smoke test: its runs keep their results, not their models" if quick else "")
        )
        if max_parallel is not None:
            launcher.set_max_parallel(db, max_parallel)
        grid_id = reproduce.launch(db, grid, remote)
    stderr.print(
        f"grid {grid_id} queued (store {path}); watch it in the app (`hybtui`) or with `hybtui grids report {grid_id}`"
    )
    return grid_id


def _csv_specs(value: str | None) -> list[str] | None:
    return None if value is None else [value]


def _print_grid_report(path: Path, grid_id: str, as_json: bool) -> None:
    from hybtui.reporting import grid_report

    with open_store(path) as db:
        rep, directory = grid_report.write_report(db, grid_id)
    if as_json:
        from hybtui import inert

        typer.echo(inert.dumps(rep, indent=1))
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(grid_report.to_markdown(rep)))
    typer.echo(f"report written to {directory}/report.md and report.json")


def report_after_run(path: Path, run_id: str) -> None:
    """The worker's last act: where its run was the last of a grid to end, write the grid's
    report (a detached grid has no watcher to do it). Rank 0 alone writes; a failure is only
    logged (the app and `hybtui grids report` write it too), never the run's exit status."""
    import os

    from hybtui.reporting import grid_report
    from hybtui.runs.store import Store

    if os.environ.get("RANK", "0") != "0":
        return
    try:
        with Store(path) as db:
            for directory in grid_report.write_for_run(db, run_id):
                print(f"grid report written to {directory}/report.md", file=sys.stderr)
    except Exception as exc:  # the run has ended as recorded; the report can be written later
        print(f"hybtui: warning: grid report not written: {type(exc).__name__}: {exc}", file=sys.stderr)


@grids_app.command("ls")
def grids_ls(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Grids, newest first, with how many of their runs have finished."""
    from hybtui import inert
    from hybtui.runs import grid as reproduce

    with open_store(store) as db:
        listing = [(g, reproduce.grid_runs(db, g)) for g in db.list_grids()]
    rows = [
        {
            "id": g["id"],
            "name": g["name"],
            "created_at": g["created_at"],
            "runs": len(runs),
            "finished": sum(1 for _, r in runs if r and r.status == "finished"),
            "done": reproduce.is_done(runs),
        }
        for g, runs in listing
    ]
    if as_json:
        typer.echo(inert.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "runs finished", "age")
    now = time.time()
    for row in rows:
        table.add_row(
            inert.text(row["id"]),
            inert.text(row["name"]),
            f"{row['finished']}/{row['runs']}",
            age(now - row["created_at"]),
        )
    Console().print(table)


@grids_app.command("report")
def grids_report(grid_id: str, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """A grid's report (Table 1, deltas, seen/unseen, per language), printed and written
    as report.md / report.json in the grid's directory."""
    from hybtui.runs.store import store_path

    _print_grid_report(store_path(store), grid_id, as_json)
