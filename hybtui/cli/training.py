"""`hybtui train`, `hybtui sample` and the hidden `hybtui worker`: a run recorded in the
store and trained, the batches it would draw, and the process that executes a queued run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hybtui.cli.common import PRECISION_HELP, DataDirOption, JsonOption, StoreOption, open_store
from hybtui.cli.placement import BackendOption, CpusOption, MemOption, PartitionOption, TimeOption
from hybtui.errors import HybtuiError

if TYPE_CHECKING:
    from hybtui.config import RunConfig
    from hybtui.runs.records import Placement

ConfigOption = Annotated[Path | None, typer.Option("--config", help="A TOML (or JSON) run configuration.")]
SamplerOption = Annotated[str | None, typer.Option(help="mono (X-X-mono), cross (X-Y) or hybrid.")]
AlphaOption = Annotated[float | None, typer.Option(help="hybrid: probability of a monolingual batch.")]
BatchSizeOption = Annotated[int | None, typer.Option(help="Global batch size (pairs per step).")]
SeedOption = Annotated[int | None, typer.Option(help="Seed: batches are a pure function of seed and step.")]
TrainList = Annotated[
    list[str] | None,
    typer.Option("--train", help="mlqa-r[:langs] | xquad-r[:langs] | FILE.jsonl | hf:NAME (repeatable)."),
]
EvalList = Annotated[
    list[str] | None, typer.Option("--eval", help="Benchmarks to evaluate on, e.g. xquad-r (repeatable).")
]
# Options of `train` alone, named here so that its signature keeps one line per option.
SymmetricOption = Annotated[bool | None, typer.Option("--symmetric/--no-symmetric", help="Add the passage→query term.")]
GradAccumulationOption = Annotated[int | None, typer.Option(help="Micro-batches per step (fewer negatives each).")]
FreezeEmbeddingsOption = Annotated[
    bool | None, typer.Option("--freeze-embeddings/--train-embeddings", help="Freeze the word embeddings.")
]
EvalEveryOption = Annotated[int | None, typer.Option(help="Quick evaluation + validation loss every N steps (0: off).")]
KeepCheckpointsOption = Annotated[
    int | None,
    typer.Option(help="Checkpoints kept: the newest N while running; N final encoders once finished (0: none)."),
]
ValidationFractionOption = Annotated[float | None, typer.Option(help="Share of items held out for validation loss.")]
DetachOption = Annotated[bool, typer.Option("--detach", help="Queue the run for a background worker and print its id.")]
GpusOption = Annotated[
    int | None,
    typer.Option(
        "--gpus",
        help="GPUs the run holds (default: 1 where this host has GPUs and the device is auto/cuda; >1: torchrun).",
    ),
]
MaxParallelOption = Annotated[
    int | None, typer.Option(help="With --detach: how many runs of this store may run at once (kept).")
]


def _run_config(config_file: Path | None, **options) -> RunConfig:
    """The run configuration: the TOML/JSON file, then every explicitly given option."""
    from hybtui.config import RunConfig

    base = RunConfig.from_file(config_file) if config_file else RunConfig()
    given = {k: v for k, v in options.items() if v is not None and v != []}
    return base.replace(**given) if given else base


#: The options of `hybtui train` that are not RunConfig fields.
COMMAND_OPTIONS = {"config_file", "detach", "gpus", "max_parallel", "data_dir", "store", "as_json"}
#: Where the run executes (a Slurm run is always detached: Slurm is its queue).
BACKEND_OPTIONS = {"backend", "partition", "time", "mem", "cpus"}


def train_command(
    config_file: ConfigOption = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    model: Annotated[str | None, typer.Option(help="Registry name, Hugging Face id or local checkpoint.")] = None,
    sampler: SamplerOption = None,
    alpha: AlphaOption = None,
    train: TrainList = None,
    eval_spec: EvalList = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    batch_size: BatchSizeOption = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay.")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warmup steps.")] = None,
    temperature: Annotated[float | None, typer.Option(help="InfoNCE temperature τ.")] = None,
    symmetric: SymmetricOption = None,
    max_length: Annotated[int | None, typer.Option(help="Maximum tokens per text.")] = None,
    grad_cache_chunk: Annotated[int | None, typer.Option(help="GradCache chunk size (0: off).")] = None,
    grad_accumulation: GradAccumulationOption = None,
    forward_chunk: Annotated[int | None, typer.Option(help="Texts per length-sorted forward group (0: one).")] = None,
    precision: Annotated[str | None, typer.Option(help=PRECISION_HELP)] = None,
    freeze_embeddings: FreezeEmbeddingsOption = None,
    eval_every: EvalEveryOption = None,
    eval_max_queries: Annotated[int | None, typer.Option(help="Queries per language in quick evaluations.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N steps (0: only at the end).")] = None,
    keep_checkpoints: KeepCheckpointsOption = None,
    validation_fraction: ValidationFractionOption = None,
    seed: SeedOption = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or auto.")] = None,
    gpus: GpusOption = None,
    backend: BackendOption = None,
    partition: PartitionOption = None,
    time: TimeOption = None,
    mem: MemOption = None,
    cpus: CpusOption = None,
    detach: DetachOption = False,
    max_parallel: MaxParallelOption = None,
    data_dir: DataDirOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune an encoder with mono / cross / hybrid batches; every run is recorded in the store."""
    # Every option but the command's own is the RunConfig field of its name (--eval: eval_spec).
    fields = {k: v for k, v in locals().items() if k not in COMMAND_OPTIONS | BACKEND_OPTIONS}
    where = {"backend": backend, "partition": partition, "time": time, "mem": mem, "cpus": cpus}
    from hybtui.data import sources

    root = sources.data_dir_from_env(data_dir)
    fields["eval"] = fields.pop("eval_spec")
    config = _run_config(config_file, **fields, data_dir=str(root.resolve()) if root else None)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 records the run, the others only train
        from hybtui.runs.worker import train_unrecorded

        train_unrecorded(config)
        return
    placement = _check_before_recording(config, root, max_parallel, store, gpus, detach, where)
    _record_and_train(store, config, placement, detach, max_parallel, as_json)


def _check_before_recording(
    config: RunConfig,
    root: Path | None,
    max_parallel: int | None,
    store: Path | None,
    gpus: int | None,
    detach: bool,
    where: dict,
) -> Placement:
    """A bad model, device, placement (GPUs, backend), data or sampler settings are rejected
    before a run is recorded (those first: their checks need no torch and no data). Returns
    where the run is to execute."""
    from hybtui.cli import placement
    from hybtui.modeling import registry
    from hybtui.runs import gpus as gpu_pool
    from hybtui.runs import launcher
    from hybtui.runs.records import Placement
    from hybtui.runs.store import store_path

    # The store's default backend applies to queued runs; a foreground run trains here unless told otherwise.
    if gpus is None and config.device == "cuda" and where["backend"] == "slurm":
        gpus = 1  # a cluster job on `cuda` asks its scheduler for a GPU
    remote = placement.placement(store_path(store), gpus=gpus, uses_default=detach, **where)
    count = gpu_pool.default_count(config.device) if gpus is None else gpus
    if remote is not None:
        registry.check_model_and_device(config.model, config.device, here=False, precision=config.precision)
    else:
        _check_local_gpus(count, config.device, detach)
        registry.check_model_and_device(config.model, config.device, precision=config.precision)
    from hybtui.data.checks import prepare_data

    prepare_data(config, root)
    if max_parallel is not None:
        launcher.check_max_parallel(max_parallel)
    return remote or Placement(count)


def _check_local_gpus(count: int, device: str, detach: bool) -> None:
    from hybtui.runs import gpus as gpu_pool

    gpu_pool.check_count(count, device)
    if count > 1 and not detach:
        raise HybtuiError(
            f"--gpus {count} runs as a torchrun group from the queue: add --detach "
            f"(or start `torchrun --nproc-per-node {count} -m hybtui train …` yourself)"
        )


def _record_and_train(
    store: Path | None, config: RunConfig, placement: Placement, detach: bool, max_parallel: int | None, as_json: bool
) -> None:
    """With --detach or a remote backend, queue the run and print its id; otherwise train it
    here, as the worker would, on GPUs free now. What the run likely did not mean is told once
    the store has taken it (a store that refuses it says so alone)."""
    from hybtui.data.checks import run_warnings
    from hybtui.runs import launcher
    from hybtui.runs.store import store_path

    with open_store(store) as db:
        db.check_writable()
        for warning in run_warnings(config):
            print(f"hybtui: warning: {warning}", file=sys.stderr)
        if detach or placement.backend is not None:
            if max_parallel is not None:
                launcher.set_max_parallel(db, max_parallel)
            run_id = launcher.submit(db, config, placement=placement)
            typer.echo(json.dumps({"id": run_id}) if as_json else run_id)
            return
        run_id = launcher.start_here(db, config, placement)
    _train_in_foreground(store_path(store), run_id, config, as_json)


def _train_in_foreground(path: Path, run_id: str, config: RunConfig, as_json: bool) -> None:
    from hybtui.cli.console import TrainingProgress, stderr
    from hybtui.results import ResultRow, summary
    from hybtui.runs.worker import run_worker

    with TrainingProgress(config.steps, enabled=not as_json or stderr.is_terminal) as progress:
        progress.on_message(f"run {run_id} (store {path})")
        code = run_worker(path, run_id, console=progress)
    with open_store(path) as db:
        run = db.get_run(run_id)
        rows = db.results(run_id)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "id": run_id,
                    "status": run.status,
                    "step": run.step,
                    "results": rows,
                    "summary": summary(map(ResultRow.from_dict, rows)),
                },
                indent=1,
            )
        )
    else:
        from hybtui.inert import visible

        typer.echo(
            visible(f"run {run_id} {run.status} at step {run.step}") + (f": {visible(run.error)}" if run.error else "")
        )
    if code:
        raise typer.Exit(1)


def sample_command(
    config_file: ConfigOption = None,
    sampler: SamplerOption = None,
    alpha: AlphaOption = None,
    train: TrainList = None,
    batch_size: BatchSizeOption = None,
    steps: Annotated[int | None, typer.Option(help="How many batches to draw.")] = None,
    seed: SeedOption = None,
    start: Annotated[int, typer.Option(help="First step to draw (batches are a pure function of seed and step).")] = 0,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per batch per line.")] = False,
) -> None:
    """Dry-run a sampler: the batches a training run would draw."""
    from hybtui.data import sources
    from hybtui.data.checks import validate_sampler
    from hybtui.data.training import load_training_sets, split_validation
    from hybtui.training import sampling

    config = _run_config(
        config_file, sampler=sampler, alpha=alpha, train=train, batch_size=batch_size, steps=steps, seed=seed
    )
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


def worker_command(
    run_id: str,
    store: StoreOption = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="Report into this run directory's journal; never open the store.")
    ] = None,
) -> None:
    """Execute one stored run (started by the launcher as a detached process, or on another
    host by a scheduler, with --journal)."""
    if journal is not None:
        from hybtui.runs.worker import run_journal_worker

        raise typer.Exit(run_journal_worker(journal, run_id))
    from hybtui.cli.grids import report_after_run
    from hybtui.runs.store import store_path
    from hybtui.runs.worker import run_worker

    path = store_path(store)
    code = run_worker(path, run_id)
    report_after_run(path, run_id)
    raise typer.Exit(code)
