"""The `hybtui` command: parses options, calls the services, prints tables or JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from hybtui.errors import HybtuiError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Train and evaluate multilingual dense retrievers with hybrid batch sampling.",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(no_args_is_help=True, help="Benchmark data: list, download, verify.")
app.add_typer(data_app, name="data")
models_app = typer.Typer(no_args_is_help=True, help="The model registry: list, prepare.")
app.add_typer(models_app, name="models")

DataDirOption = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Directory holding the benchmark files (env HYBTUI_DATA_DIR)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@app.command("eval")
def eval_command(
    model: Annotated[
        str, typer.Option(help="Registry name (see `hybtui models ls`), Hugging Face id or local checkpoint.")
    ] = "me5-small",
    eval_spec: Annotated[
        list[str], typer.Option("--eval", help="Benchmarks and languages, e.g. xquad-r:en,de,mlqa-r.")
    ] = ["xquad-r"],  # noqa: B006 - typer needs a literal default
    max_queries: Annotated[
        Optional[int], typer.Option(help="Evaluate a deterministic subset of N queries per language.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Encoding batch size.")] = 64,
    pooling: Annotated[Optional[str], typer.Option(help="mean or cls (default: the model's).")] = None,
    query_prefix: Annotated[Optional[str], typer.Option(help='Text before each query, e.g. "query: ".')] = None,
    passage_prefix: Annotated[Optional[str], typer.Option(help='Text before each candidate, e.g. "passage: ".')] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Maximum tokens per text.")] = None,
    seen: Annotated[
        Optional[str], typer.Option(help="Training languages (comma-separated): rows are marked seen/unseen.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    bf16: Annotated[bool, typer.Option(help="Encode under bf16 autocast.")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model on XQuAD-R / MLQA-R: mono, cross, multi and language bias."""
    from hybtui import evaluate, models, render
    from hybtui.console import progress_bars, stderr
    from hybtui.data import benchmarks, sources

    selections = benchmarks.parse_eval_spec(eval_spec)
    if batch_size < 1:
        raise HybtuiError(f"--batch-size must be at least 1 (got {batch_size})")
    if max_queries is not None and max_queries < 1:
        raise HybtuiError(f"--max-queries must be at least 1 (got {max_queries})")
    spec = models.encoder_spec(model, pooling, query_prefix, passage_prefix, max_length)
    root = sources.data_dir_from_env(data_dir)
    seen_langs = _csv(seen)
    started = time.perf_counter()
    with progress_bars(enabled=stderr.is_terminal or not as_json) as bars:
        loaded = [benchmarks.load(s, root, progress=bars.download) for s in selections]
        if max_queries is not None:
            loaded = [b.max_queries(max_queries) for b in loaded]
        encoder = models.load_encoder(spec, device=device, say=bars.message)
        rows = evaluate.evaluate(encoder, loaded, seen_langs, batch_size, bf16, progress=bars.counter)
    elapsed = time.perf_counter() - started
    if as_json:
        payload = {
            "results": [r.as_dict() for r in rows],
            "summary": evaluate.summary(rows),
            "model": spec.source,
            "wall_time_s": round(elapsed, 2),
        }
        typer.echo(json.dumps(payload, indent=1))
        return
    from rich.console import Console

    out = Console()
    for bench in loaded:
        out.print(render.language_table(rows, bench.name))
        out.print(render.cross_heatmap(rows, bench.name))
        seen_table = render.seen_summary(rows, bench.name)
        if seen_table is not None:
            out.print(seen_table)
    out.print(f"[dim]{spec.source}: evaluated in {elapsed:.1f} s[/dim]")


@data_app.command("ls")
def data_ls(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List benchmarks, their languages and where each file was found."""
    from hybtui.data import lareqa, sources

    root = sources.data_dir_from_env(data_dir)
    entries = []
    for bench, langs in lareqa.LANGUAGES.items():
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
    bench: Annotated[Optional[list[str]], typer.Argument(help="Benchmarks to fetch (default: all).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Download missing benchmark files into the user cache (checksums verified)."""
    from hybtui.console import progress_bars
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
    bench: Annotated[Optional[list[str]], typer.Argument(help="Benchmarks to verify (default: all).")] = None,
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
    from hybtui import models

    entries = [{"name": e.name, "source": e.source, "params": e.params, "pooling": e.pooling,
                "status": models.availability(e), "about": e.about} for e in models.REGISTRY.values()]
    if as_json:
        typer.echo(json.dumps(entries, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "source", "params", "pooling", "status", "about")
    for e in entries:
        table.add_row(e["name"], e["source"], e["params"], e["pooling"], e["status"], e["about"])
    Console().print(table)


@models_app.command("prepare")
def models_prepare(name: Annotated[str, typer.Argument(help="Registry name, Hugging Face id or local path.")]) -> None:
    """Materialise or download a model now, so later runs start offline."""
    from hybtui import models
    from hybtui.console import stderr

    path = models.checkpoint_dir(name, say=lambda text: stderr.print(text, style="dim"))
    typer.echo(f"{name}: ready at {path}")


def main() -> None:
    """Entry point: user errors become one clear line on stderr and exit status 2."""
    try:
        app()
    except HybtuiError as exc:
        print(f"hybtui: error: {exc}", file=sys.stderr)
        sys.exit(2)
