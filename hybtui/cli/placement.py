"""Where runs execute, as the commands ask for it: the backend options of `hybtui train` and
`hybtui reproduce`, and `hybtui runs backend`, which keeps a backend as the store's default
(the app's launches and commands given no --backend use it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hybtui.cli.common import StoreOption, open_store
from hybtui.errors import HybtuiError

if TYPE_CHECKING:
    from hybtui.runs.records import Placement

BACKENDS = ("local", "slurm")
BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="local (a worker on this host) or slurm (one Slurm job per run, submitted at once); "
        "default: the store's (`hybtui runs backend`).",
    ),
]
PartitionOption = Annotated[str | None, typer.Option("--partition", help="slurm: the partition (default: Slurm's).")]
TimeOption = Annotated[
    str | None, typer.Option("--time", help="slurm: the job's time limit, e.g. 4:00:00 or 1-12 (days-hours).")
]
MemOption = Annotated[str | None, typer.Option("--mem", help="slurm: memory per node, e.g. 16G.")]
CpusOption = Annotated[int | None, typer.Option("--cpus", help="slurm: CPUs for the job (default: Slurm's).")]


def placement(
    path: Path, backend: str | None, gpus: int | None, uses_default: bool = True, **options: str | int | None
) -> Placement | None:
    """The remote placement asked for, checked before anything is written (None: a local run,
    placed by this host's queue). Options not given come from the store's default backend
    when it is the same one; without --backend that default applies where `uses_default`."""
    from hybtui.runs import launcher, slurm
    from hybtui.runs.records import Placement

    given = {key: value for key, value in options.items() if value is not None}
    default = launcher.default_backend(path)
    if backend is not None and backend not in BACKENDS:
        raise HybtuiError(f"unknown backend '{backend}'; one of {', '.join(BACKENDS)}")
    chosen = backend or (default.backend if uses_default else None) or "local"
    if chosen == "local":
        if given:
            raise HybtuiError(f"--{'/--'.join(sorted(given))} only apply to --backend slurm")
        return None
    kept = dict(default.options) if uses_default and default.backend == chosen else {}
    asked = Placement(gpus or 0, slurm.BACKEND, {**kept, **given})
    slurm.check(asked)
    return asked


def backend_command(
    name: Annotated[str | None, typer.Argument(help="local or slurm; none: show the store's default.")] = None,
    partition: PartitionOption = None,
    time: TimeOption = None,
    mem: MemOption = None,
    cpus: CpusOption = None,
    store: StoreOption = None,
) -> None:
    """The backend (and its options) runs are placed on unless a command says otherwise —
    the app's launches and `hybtui reproduce` included."""
    from hybtui.runs import launcher
    from hybtui.runs.records import Placement
    from hybtui.runs.store import store_path

    path = store_path(store)
    if name is not None:
        # The store's own default is not merged in: what is given here replaces it.
        asked = placement(path, name, None, uses_default=False, partition=partition, time=time, mem=mem, cpus=cpus)
        with open_store(store) as db:
            launcher.set_default_backend(db, asked or Placement())
    kept = launcher.default_backend(path)
    options = " ".join(f"--{key} {value}" for key, value in sorted(kept.options.items()))
    typer.echo(" ".join(filter(None, [kept.backend or "local", options])))
