"""`hybtui data ...` and `hybtui models ...`: what an evaluation or a run needs before it
starts, the benchmark files and the encoders, listed and made ready offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hybtui.cli.common import DataDirOption, JsonOption
from hybtui.errors import HybtuiError

data_app = typer.Typer(no_args_is_help=True, help="Benchmark data: list, download, verify.")
models_app = typer.Typer(no_args_is_help=True, help="The model registry: list, prepare.")


@data_app.command("ls")
def data_ls(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List benchmarks, their languages and where each file was found."""
    from hybtui.data import lareqa, sources

    root = sources.data_dir_from_env(data_dir)
    entries = []
    for bench in lareqa.LANGUAGES:
        for pinned in lareqa.pinned_files(bench):
            path = sources.find(pinned, root)
            entries.append({"bench": bench, "file": pinned.relpath, "path": str(path) if path else None})
    if as_json:
        typer.echo(json.dumps(entries, indent=1))
        return
    for bench, langs in lareqa.LANGUAGES.items():
        mine = [e for e in entries if e["bench"] == bench]
        have = [e for e in mine if e["path"]]
        where = sorted({str(Path(e["path"]).parent.parent) for e in have})
        typer.echo(
            f"{bench:8} {len(langs):2} languages ({' '.join(langs)}): "
            f"{len(have)}/{len(mine)} files present" + (f" in {', '.join(where)}" if where else "")
        )


@data_app.command("fetch")
def data_fetch(
    bench: Annotated[list[str] | None, typer.Argument(help="Benchmarks to fetch (default: all).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Download missing benchmark files into the user cache (checksums verified)."""
    from hybtui.cli.console import progress_bars
    from hybtui.data import benchmarks, sources

    root = sources.data_dir_from_env(data_dir)
    names = bench or list(benchmarks.LANGUAGES)
    selections = benchmarks.parse_eval_spec(names)
    with progress_bars() as bars:
        for selection in selections:
            benchmarks.load(selection, root, progress=bars.download)
            typer.echo(f"{selection.name}: all files present and verified")


@data_app.command("verify")
def data_verify(
    bench: Annotated[list[str] | None, typer.Argument(help="Benchmarks to verify (default: all).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Check every present benchmark file against its pinned sha256; exit 1 on any problem."""
    from hybtui.data import benchmarks, lareqa, sources

    root = sources.data_dir_from_env(data_dir)
    problems = 0
    for selection in benchmarks.parse_eval_spec(bench or list(benchmarks.LANGUAGES)):
        for pinned in lareqa.pinned_files(selection.name, selection.languages):
            path = sources.find(pinned, root)
            if path is None:
                typer.echo(f"missing   {pinned.relpath}")
                problems += 1
                continue
            try:
                sources.verify(pinned, path)
                typer.echo(f"ok        {path}")
            except HybtuiError as exc:
                typer.echo(f"MISMATCH  {exc}")
                problems += 1
    if problems:
        raise typer.Exit(1)


@models_app.command("ls")
def models_ls(as_json: JsonOption = False) -> None:
    """Registry names with their source, size and whether they are ready offline."""
    from hybtui.modeling import encoder as models

    entries = [
        {
            "name": e.name,
            "source": e.source,
            "params": e.params,
            "pooling": e.pooling,
            "status": models.availability(e),
            "about": e.about,
        }
        for e in models.REGISTRY.values()
    ]
    if as_json:
        typer.echo(json.dumps(entries, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "params", "pooling", "status", "source")
    table.columns[0].no_wrap = True
    for e in entries:
        table.add_row(e["name"], e["params"], e["pooling"], e["status"], e["source"])
    Console().print(table)


@models_app.command("prepare")
def models_prepare(name: Annotated[str, typer.Argument(help="Registry name, Hugging Face id or local path.")]) -> None:
    """Materialise or download a model now, so later runs start offline."""
    from hybtui.cli.console import stderr
    from hybtui.modeling import encoder as models

    path = models.checkpoint_dir(name, say=lambda text: stderr.print(text, style="dim"))
    typer.echo(f"{name}: ready at {path}")
