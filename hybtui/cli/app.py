"""The `hybtui` command: parses options, calls the services, prints tables or JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from hybtui.errors import HybtuiError
from hybtui.results import AVERAGE, ResultRow, headline, summary

if TYPE_CHECKING:
    from hybtui.config import RunConfig
    from hybtui.runs.store import Store

app = typer.Typer(
    invoke_without_command=True,
    add_completion=False,
    help="Train and evaluate multilingual dense retrievers with hybrid batch sampling. "
    "With no command: open the app.",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(no_args_is_help=True, help="Benchmark data: list, download, verify.")
app.add_typer(data_app, name="data")
models_app = typer.Typer(no_args_is_help=True, help="The model registry: list, prepare.")
app.add_typer(models_app, name="models")
runs_app = typer.Typer(no_args_is_help=True, help="Stored runs: list, show, cancel, resume, remove, export.")
app.add_typer(runs_app, name="runs")
grids_app = typer.Typer(no_args_is_help=True, help="Grids of runs launched together (hybtui reproduce): list, report.")
app.add_typer(grids_app, name="grids")

DataDirOption = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Directory holding the benchmark files (env HYBTUI_DATA_DIR)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
StoreOption = Annotated[Optional[Path], typer.Option("--store", help="The run store directory (env HYBTUI_STORE, default ./store).")]


def open_store(store: Path | None) -> Store:
    """The run store, with its queue advanced: every command that opens the store fills the
    slots that freed since — a crash this very open swept, a run deleted elsewhere — so a
    queued run never waits for the next submit. Where the store cannot be written (a read-only
    copy, a full disk) the command still reads it, and says why nothing was started."""
    from hybtui.runs import launcher
    from hybtui.runs.store import Store, store_path

    db = Store(store_path(store))
    try:
        launcher.advance(db)
    except launcher.ADVANCE_ERRORS as exc:
        print(f"hybtui: warning: queued runs not started: {exc}", file=sys.stderr)
    except BaseException:
        db.close()
        raise
    return db


@app.callback()
def open_app(
    ctx: typer.Context,
    store: Annotated[Optional[Path], typer.Option("--store", help="The run store directory (env HYBTUI_STORE, default ./store).")] = None,
) -> None:
    """With no command, open the Textual app on the run store."""
    if ctx.invoked_subcommand is None:
        from hybtui.tui.app import run_app

        run_app(store)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@app.command("eval")
def eval_command(
    model: Annotated[
        str, typer.Option(help="Registry name (see `hybtui models ls`), Hugging Face id or local checkpoint.")
    ] = "me5-small",
    eval_spec: Annotated[
        list[str], typer.Option("--eval", help="Benchmarks and languages, e.g. xquad-r:en,de,mlqa-r, miracl:sw,th "
                                "or beir:PATH.")
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
    index: Annotated[str, typer.Option(help="Corpus search for miracl / beir: exact, or approximate hnsw / ivf "
                                       "(reported with their recall against exact search).")] = "exact",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model on XQuAD-R / MLQA-R (mono, cross, multi, language bias) and MIRACL / BEIR corpora."""
    from hybtui import inert
    from hybtui.evaluation import evaluate
    from hybtui.modeling import encoder as models
    from hybtui.reporting import tables as render
    from hybtui.evaluation import retrieval
    from hybtui.cli.console import progress_bars, stderr
    from hybtui.data import benchmarks, miracl, sources

    selections = benchmarks.parse_eval_spec(eval_spec)
    retrieval.check_index(index)
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
        warnings = [w for b in loaded if isinstance(b, miracl.CorpusBenchmark) for w in b.warnings]
        for warning in warnings:
            bars.message(f"warning: {warning}")
        encoder = models.load_encoder(spec, device=device, say=bars.message)
        searches: dict[str, dict[str, retrieval.SearchReport]] = {}
        rows = evaluate.evaluate(encoder, loaded, seen_langs, batch_size, bf16, progress=bars.counter, index=index,
                                 cache_dir=retrieval.embedding_cache_root(),
                                 on_search=lambda bench, lang, report: searches.setdefault(bench, {}).update({lang: report}))
    elapsed = time.perf_counter() - started
    if as_json:
        payload = {
            "results": [r.as_dict() for r in rows],
            "summary": summary(rows),
            "model": spec.source,
            "wall_time_s": round(elapsed, 2),
        }
        if searches:
            payload["search"] = {b: {lang: r.as_dict() for lang, r in reports.items()} for b, reports in searches.items()}
        if warnings:
            payload["warnings"] = warnings
        typer.echo(json.dumps(payload, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    out = Console()
    for bench in loaded:
        if isinstance(bench, miracl.CorpusBenchmark):
            table = Table("lang", "seen", *evaluate.CORPUS_METRICS, "search", title=bench.name, title_justify="left")
            shown = {(r.query_lang, r.metric): r for r in rows if r.bench == bench.name
                     and (r.seen is None or r.query_lang != AVERAGE)}
            for lang in (*bench.languages, AVERAGE):
                report = searches[bench.name].get(lang)
                how = "" if report is None else f"{report.index} {report.search_s:.2f} s" + (
                    "" if report.recall_vs_exact is None else f" (build {report.build_s:.1f} s; recall@100 vs exact "
                    f"{report.recall_vs_exact:.3f}, exact {report.exact_search_s:.2f} s)")
                table.add_row(lang, shown[(lang, "ndcg@10")].seen or "",
                              *(f"{shown[(lang, m)].value:.3f}" for m in evaluate.CORPUS_METRICS), how)
            out.print(table)
            continue
        out.print(render.language_table(rows, bench.name))
        out.print(render.cross_heatmap(rows, bench.name))
        seen_table = render.seen_summary(rows, bench.name)
        if seen_table is not None:
            out.print(seen_table)
    out.print(inert.text(f"{spec.source}: evaluated in {elapsed:.1f} s", style="dim"))


def _run_config(config_file: Path | None, **options) -> RunConfig:
    """The run configuration: the TOML/JSON file, then every explicitly given option."""
    from hybtui.config import RunConfig

    base = RunConfig.from_file(config_file) if config_file else RunConfig()
    given = {k: v for k, v in options.items() if v is not None and v != []}
    return base.replace(**given) if given else base


ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="A TOML (or JSON) run configuration.")]
SamplerOption = Annotated[Optional[str], typer.Option(help="mono (X-X-mono), cross (X-Y) or hybrid.")]
AlphaOption = Annotated[Optional[float], typer.Option(help="hybrid: probability of a monolingual batch.")]
BatchSizeOption = Annotated[Optional[int], typer.Option(help="Global batch size (pairs per step).")]
SeedOption = Annotated[Optional[int], typer.Option(help="Seed: batches are a pure function of seed and step.")]
TrainList = Annotated[Optional[list[str]], typer.Option("--train", help="mlqa-r[:langs] | xquad-r[:langs] | FILE.jsonl | hf:NAME (repeatable).")]
EvalList = Annotated[Optional[list[str]], typer.Option("--eval", help="Benchmarks to evaluate on, e.g. xquad-r (repeatable).")]


@app.command("train")
def train_command(
    config_file: ConfigOption = None,
    name: Annotated[Optional[str], typer.Option(help="A name for the run.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Registry name, Hugging Face id or local checkpoint.")] = None,
    sampler: SamplerOption = None,
    alpha: AlphaOption = None,
    train: TrainList = None,
    eval_spec: EvalList = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps.")] = None,
    batch_size: BatchSizeOption = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (AdamW).")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay.")] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help="Linear warmup steps.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="InfoNCE temperature τ.")] = None,
    symmetric: Annotated[Optional[bool], typer.Option("--symmetric/--no-symmetric", help="Add the passage→query term.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Maximum tokens per text.")] = None,
    grad_cache_chunk: Annotated[Optional[int], typer.Option(help="GradCache chunk size (0: off).")] = None,
    grad_accumulation: Annotated[Optional[int], typer.Option(help="Micro-batches per step (fewer negatives each).")] = None,
    forward_chunk: Annotated[Optional[int], typer.Option(help="Texts per length-sorted forward group (0: one).")] = None,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="bf16 autocast.")] = None,
    freeze_embeddings: Annotated[Optional[bool], typer.Option("--freeze-embeddings/--train-embeddings", help="Freeze the word embeddings.")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="Quick evaluation + validation loss every N steps (0: off).")] = None,
    eval_max_queries: Annotated[Optional[int], typer.Option(help="Queries per language in quick evaluations.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Checkpoint every N steps (0: only at the end).")] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option(help="Checkpoints kept: the newest N while running; "
                                                            "N final encoders once finished (0: none).")] = None,
    validation_fraction: Annotated[Optional[float], typer.Option(help="Share of items held out for validation loss.")] = None,
    seed: SeedOption = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N or auto.")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Queue the run for a background worker and print its id.")] = False,
    max_parallel: Annotated[Optional[int], typer.Option(help="With --detach: how many runs of this store may run at once (kept).")] = None,
    data_dir: DataDirOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune an encoder with mono / cross / hybrid batches; every run is recorded in the store."""
    from hybtui.data import sources

    root = sources.data_dir_from_env(data_dir)
    config = _run_config(
        config_file, name=name, model=model, sampler=sampler, alpha=alpha, train=train, eval=eval_spec,
        steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
        temperature=temperature, symmetric=symmetric, max_length=max_length, grad_cache_chunk=grad_cache_chunk,
        grad_accumulation=grad_accumulation, forward_chunk=forward_chunk, bf16=bf16, freeze_embeddings=freeze_embeddings, eval_every=eval_every,
        eval_max_queries=eval_max_queries, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
        validation_fraction=validation_fraction, seed=seed, device=device,
        data_dir=str(root.resolve()) if root else None,
    )
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 records the run, the others only train
        from hybtui.training.trainer import Trainer

        Trainer(config, Path(tempfile.mkdtemp(prefix="hybtui-rank-"))).run()
        return
    from hybtui.runs import launcher
    from hybtui.modeling import registry
    from hybtui.runs.store import store_path

    # A bad model, device, data or sampler settings are rejected before a run is recorded
    # (the model and device first: that check needs no torch and no data).
    registry.check_model_and_device(config.model, config.device)
    from hybtui.data.checks import prepare_data

    prepare_data(config, root)
    if max_parallel is not None:
        launcher.check_max_parallel(max_parallel)
    with open_store(store) as db:
        if detach:
            if max_parallel is not None:
                launcher.set_max_parallel(db, max_parallel)
            run_id = launcher.submit(db, config)
            typer.echo(json.dumps({"id": run_id}) if as_json else run_id)
            return
        run_id = db.create_run(config, status="running")
    _train_in_foreground(store_path(store), run_id, config, as_json)


def _train_in_foreground(path: Path, run_id: str, config: RunConfig, as_json: bool) -> None:
    from hybtui.evaluation import evaluate
    from hybtui.cli.console import TrainingProgress, stderr
    from hybtui.runs.worker import run_worker

    with TrainingProgress(config.steps, enabled=not as_json or stderr.is_terminal) as progress:
        progress.on_message(f"run {run_id} (store {path})")
        code = run_worker(path, run_id, console=progress)
    with open_store(path) as db:
        run = db.get_run(run_id)
        rows = db.results(run_id)
    if as_json:
        typer.echo(json.dumps({"id": run_id, "status": run["status"], "step": run["step"], "results": rows,
                               "summary": summary(map(ResultRow.from_dict, rows))},
                              indent=1))
    else:
        from hybtui.inert import visible

        typer.echo(visible(f"run {run_id} {run['status']} at step {run['step']}")
                   + (f": {visible(run['error'])}" if run["error"] else ""))
    if code:
        raise typer.Exit(1)


@app.command("sample")
def sample_command(
    config_file: ConfigOption = None,
    sampler: SamplerOption = None,
    alpha: AlphaOption = None,
    train: TrainList = None,
    batch_size: BatchSizeOption = None,
    steps: Annotated[Optional[int], typer.Option(help="How many batches to draw.")] = None,
    seed: SeedOption = None,
    start: Annotated[int, typer.Option(help="First step to draw (batches are a pure function of seed and step).")] = 0,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per batch per line.")] = False,
) -> None:
    """Dry-run a sampler: the batches a training run would draw."""
    from hybtui.data.checks import validate_sampler
    from hybtui.training import sampling
    from hybtui.data import sources
    from hybtui.data.training import load_training_sets, split_validation

    config = _run_config(config_file, sampler=sampler, alpha=alpha, train=train, batch_size=batch_size,
                         steps=steps, seed=seed)
    sets = load_training_sets(list(config.train), sources.data_dir_from_env(data_dir))
    sets = [split_validation(s, config.validation_fraction)[0] for s in sets]  # exactly what training draws from
    validate_sampler(sets, config.sampler, config.batch_size, config.alpha)
    drawn = sampling.BatchSampler(sets, config.sampler, config.batch_size, config.seed, config.alpha)
    batches = drawn.batches(start, start + config.steps)
    if as_json:
        for batch in batches:
            sys.stdout.write(json.dumps(sampling.batch_to_json(batch, sets)) + "\n")
        return
    from rich.console import Console

    from hybtui.reporting import tables as render

    Console().print(*render.sample_summary(sampling.summarize(batches), config))


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
    from hybtui.modeling import encoder as models

    entries = [{"name": e.name, "source": e.source, "params": e.params, "pooling": e.pooling,
                "status": models.availability(e), "about": e.about} for e in models.REGISTRY.values()]
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
    from hybtui.modeling import encoder as models
    from hybtui.cli.console import stderr

    path = models.checkpoint_dir(name, say=lambda text: stderr.print(text, style="dim"))
    typer.echo(f"{name}: ready at {path}")


@app.command("worker", hidden=True)
def worker_command(run_id: str, store: StoreOption = None) -> None:
    """Execute one stored run (started by the launcher as a detached process)."""
    from hybtui.runs.store import store_path
    from hybtui.runs.worker import run_worker

    raise typer.Exit(run_worker(store_path(store), run_id))


@runs_app.command("ls")
def runs_ls(
    status: Annotated[Optional[str], typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most this many, newest first (table default 50; --json: all).")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first, with their status (stalled ones marked) and progress."""
    from hybtui import inert
    from hybtui.reporting import export as report
    from hybtui.runs.store import is_stalled

    shown = limit if limit is not None or as_json else 50
    with open_store(store) as db:
        runs = db.list_runs(status=status, limit=None if shown is None else shown + 1)
    more = shown is not None and len(runs) > shown
    runs = runs[:shown]
    if as_json:
        keys = ("id", "name", "status", "pid", "created_at", "started_at", "ended_at", "step", "total_steps",
                "exit_code", "error", "parent_id", "config", "config_error")
        typer.echo(inert.dumps([{**{k: r[k] for k in keys}, "stalled": is_stalled(r)} for r in runs], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "model", "sampler", "α", "status", "step", "age")
    now = time.time()
    for r in runs:
        state = r["status"] + (" (stalled)" if is_stalled(r) else "")
        table.add_row(*(inert.text(cell) for cell in (
            r["id"], r["name"] or "", *(report.config_value(r, k) for k in ("model", "sampler", "alpha")), state,
            f"{r['step'] or 0}/{r['total_steps']}", report.age(now - r["created_at"]))))
    Console().print(table)
    if more:
        typer.echo(f"(newest {shown} shown; --limit N for more)")


@runs_app.command("show")
def runs_show(run_id: str, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """A run's configuration, status, process, timings, latest metrics and results."""
    from hybtui.runs import launcher
    from hybtui.training.checkpoint import run_disk_usage
    from hybtui.runs.store import is_stalled

    with open_store(store) as db:
        run = db.get_run(run_id)
        latest = db.latest_metrics(run["id"])
        rows = db.results(run["id"])
        events = db.events(run["id"])[-10:]
        disk = run_disk_usage(db.run_dir(run["id"]))
        log_tail = _tail(launcher.log_path(db, run["id"]))
    if as_json:
        from hybtui import inert

        typer.echo(inert.dumps({"run": {**run, "stalled": is_stalled(run)}, "latest_metrics": latest,
                                "results": rows, "events": events, "disk": dataclasses.asdict(disk),
                                "log_tail": log_tail}, indent=1))
        return
    from rich.console import Console

    from hybtui.evaluation import evaluate
    from hybtui.reporting import tables as render

    out = Console()
    for part in render.run_summary(run, is_stalled(run), latest, events):
        out.print(part)
    out.print(disk.describe())
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
        typer.echo(f"{run['id']}: {run['status']}")


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
            launcher.delete(db, run["id"])
            typer.echo(f"deleted {run['id']}")


PruneModelsOption = Annotated[bool, typer.Option("--models", help="Remove the final encoders too (results stay).")]


@runs_app.command("prune")
def runs_prune(
    run_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to prune (default: every finished or "
                                                           "failed run).")] = None,
    with_models: PruneModelsOption = False,
    store: StoreOption = None,
) -> None:
    """Free the disk of finished and failed runs: trainer states, older checkpoints, leftovers, caches."""
    from hybtui.training.checkpoint import free_ended, human_bytes

    prunable = ("finished", "failed")
    with open_store(store) as db:
        runs = [db.get_run(r) for r in run_ids] if run_ids else [r for r in db.list_runs() if r["status"] in prunable]
        for run in runs:
            if run["status"] not in prunable:
                raise HybtuiError(f"run {run['id']} is {run['status']}; only finished or failed runs are pruned "
                                  f"(its checkpoint is its resume point)")
        total = 0
        for run in runs:
            freed = free_ended(db.run_dir(run["id"]), with_models,
                               lambda step, _path, run_id=run["id"]: db.remove_artifacts(run_id, "checkpoint", step))
            total += freed
            typer.echo(f"{run['id']}: freed {human_bytes(freed)}")
    typer.echo(f"total freed: {human_bytes(total)}")


@runs_app.command("export")
def runs_export(
    run_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to export (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, json or md.")] = "csv",
    store: StoreOption = None,
) -> None:
    """Result rows of runs as CSV, JSON (with configs) or a Markdown table of headline figures."""
    from hybtui.reporting import export as report

    if fmt not in ("csv", "json", "md"):
        raise HybtuiError(f"--format must be csv, json or md (got '{fmt}')")
    with open_store(store) as db:
        runs = [db.get_run(r) for r in run_ids] if run_ids else db.list_runs()
        results = {run["id"]: db.results(run["id"], final_only=False) for run in runs}
    sys.stdout.write(report.export(runs, results, fmt))


@app.command("compare")
def compare_command(
    run_ids: Annotated[list[str], typer.Argument(help="2–6 run ids (or unique prefixes).")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs side by side: parameters that differ, headline metrics with deltas, per-language tables."""
    from hybtui.reporting import export as report

    if not 2 <= len(run_ids) <= 6:
        raise HybtuiError(f"compare takes 2 to 6 runs (got {len(run_ids)})")
    with open_store(store) as db:
        runs = [db.get_run(r) for r in run_ids]
        results = {run["id"]: db.results(run["id"]) for run in runs}
    if as_json:
        from hybtui import inert

        typer.echo(inert.dumps({
            "runs": [run["id"] for run in runs],
            "differing_parameters": report.differing_parameters([run["config"] for run in runs]),
            "headline": {run["id"]: {" ".join(k): v for k, v in headline(results[run["id"]]).items()}
                         for run in runs},
        }, indent=1))
        return
    from rich.console import Console

    from hybtui.reporting import tables as render

    out = Console()
    for part in render.comparison(runs, results):
        out.print(part)


@app.command("reproduce")
def reproduce_command(
    quick: Annotated[bool, typer.Option("--quick", help="A reduced budget that finishes in minutes on a CPU; a smoke "
                                        "test, so its runs keep no model (results only).")] = False,
    model: Annotated[str, typer.Option(help="Registry name, Hugging Face id or local checkpoint.")] = "me5-small",
    alpha: Annotated[Optional[list[float]], typer.Option("--alpha", help="Hybrid α; repeat for a sweep.")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="Seed; repeat for mean ± spread.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Steps per trained run (default 150; --quick 30).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (default 32; --quick 16).")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate, the same for every sampler.")] = 3e-5,
    train: Annotated[Optional[str], typer.Option(help="Training data (default mlqa-r; --quick mlqa-r:en,de,zh).")] = None,
    eval_spec: Annotated[Optional[str], typer.Option("--eval", help="Benchmarks (default xquad-r; --quick xquad-r:en,zh,th).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    max_parallel: Annotated[Optional[int], typer.Option(help="How many runs of this store may run at once (kept).")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Queue the grid and return; report later with `hybtui grids report`.")] = False,
    data_dir: DataDirOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """The paper's comparison: zero-shot, X-X-mono, X-Y and hybrid runs, then a report."""
    from hybtui.runs import launcher
    from hybtui.runs import grid as reproduce
    from hybtui.cli.console import stderr, watch_grid
    from hybtui.data import sources
    from hybtui.runs.store import store_path

    root = sources.data_dir_from_env(data_dir)
    if max_parallel is not None:
        launcher.check_max_parallel(max_parallel)
    grid = reproduce.plan(quick=quick, model=model, alphas=alpha or [0.5], seeds=seed or [42], steps=steps,
                          batch_size=batch_size, lr=lr, train=_csv_specs(train), eval=_csv_specs(eval_spec),
                          device=device, data_dir=root)
    expected = grid.expected_seconds()
    path = store_path(store)
    with open_store(path) as db:
        db.check_writable()  # a store that cannot take the grid is refused before anything is printed
        stderr.print(f"{grid.name}: {len(grid.configs)} runs on {model} — expected wall time about "
                     f"{expected / 60:.0f} min one run at a time (me5-small rates measured on a 2-core CPU; "
                     f"scale for your hardware)" + ("; a smoke test: its runs keep their results, not their models"
                                                    if quick else ""))
        if max_parallel is not None:
            launcher.set_max_parallel(db, max_parallel)
        grid_id = reproduce.launch(db, grid)
    stderr.print(f"grid {grid_id} queued (store {path}); watch it in the app (`hybtui`) or with "
                 f"`hybtui grids report {grid_id}`")
    if detach:
        typer.echo(json.dumps({"grid": grid_id}) if as_json else grid_id)
        return
    try:
        watch_grid(path, grid_id, enabled=not as_json or stderr.is_terminal)
    except KeyboardInterrupt:
        stderr.print(f"stopped watching; the runs go on. Report: `hybtui grids report {grid_id}`")
        raise typer.Exit(130)
    _print_grid_report(path, grid_id, as_json)


def _csv_specs(value: str | None) -> list[str] | None:
    return None if value is None else [value]


def _print_grid_report(path: Path, grid_id: str, as_json: bool) -> None:
    from hybtui.runs import grid as reproduce

    with open_store(path) as db:
        rep, directory = reproduce.write_report(db, grid_id)
    if as_json:
        from hybtui import inert

        typer.echo(inert.dumps(rep, indent=1))
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(reproduce.to_markdown(rep)))
    typer.echo(f"report written to {directory}/report.md and report.json")


@grids_app.command("ls")
def grids_ls(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Grids, newest first, with how many of their runs have finished."""
    from hybtui import inert
    from hybtui.reporting import export as report
    from hybtui.runs import grid as reproduce

    with open_store(store) as db:
        listing = [(g, reproduce.grid_runs(db, g)) for g in db.list_grids()]
    rows = [{"id": g["id"], "name": g["name"], "created_at": g["created_at"], "runs": len(runs),
             "finished": sum(1 for _, r in runs if r and r["status"] == "finished"),
             "done": reproduce.is_done(runs)} for g, runs in listing]
    if as_json:
        typer.echo(inert.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "runs finished", "age")
    now = time.time()
    for row in rows:
        table.add_row(inert.text(row["id"]), inert.text(row["name"]), f"{row['finished']}/{row['runs']}",
                      report.age(now - row["created_at"]))
    Console().print(table)


@grids_app.command("report")
def grids_report(grid_id: str, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """A grid's report (Table 1, deltas, seen/unseen, per language), printed and written
    as report.md / report.json in the grid's directory."""
    from hybtui.runs.store import store_path

    _print_grid_report(store_path(store), grid_id, as_json)


def main() -> None:
    """Entry point: user errors become one clear line on stderr and exit status 2; so does,
    as a last resort, a database error that no store method turned into one. What the
    message quotes (a name, a path) cannot break the line or reach the terminal raw."""
    import sqlite3

    try:
        app()
    except HybtuiError as exc:
        _fail(str(exc))
    except sqlite3.Error as exc:
        from hybtui.runs.store import DB_NAME, store_error, store_path

        _fail(str(store_error(exc, store_path(_store_argument(sys.argv[1:])) / DB_NAME)))


def _store_argument(args: list[str]) -> str | None:
    """The --store value on a command line (typer's parse is gone by the time main() catches)."""
    for i, arg in enumerate(args):
        if arg == "--store" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--store="):
            return arg.split("=", 1)[1]
    return None


def _fail(message: str) -> None:
    """One line, whatever the message holds: a traceback never reaches the user."""
    from hybtui.inert import visible

    print(f"hybtui: error: {visible(' '.join(message.splitlines()))}", file=sys.stderr)
    sys.exit(2)
