"""Start, queue, cancel and resume workers.

A worker is `python -m hybtui worker RUN_ID` in its own session (so its own process
group): closing the terminal or the app that launched it does not stop it, and
cancelling signals the whole group (torchrun children included). It is started through
a short-lived intermediate (`hybtui/detach.py`) so that it is nobody's child: init reaps
it, and no launching process leaves zombies. Runs wait as `queued` until fewer than
`max_parallel` runs are `running`. The queue advances whenever a slot frees, however it
frees: a finishing worker starts the next run itself; a crash is found by the sweep of
whoever opens the store next, and `advance` (called by every CLI command that opens the
store and by the app's refresh) fills the slot; cancel and delete advance too. Starting
runs happens under a file lock so two callers never overfill the slots. A run placed on
Slurm (`hybtui.runs.slurm`) is submitted at once instead: Slurm is its queue, and it takes
no slot here.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.runs import gpus as gpu_pool
from hybtui.runs import journal, slurm
from hybtui.runs.records import TERMINAL_STATUSES, Placement, Run
from hybtui.runs.store import Store
from hybtui.training import checkpoint as checkpoints

SETTINGS = "settings.json"
LOG = "worker.log"


def settings(path: Path) -> dict:
    """The store's kept settings (``settings.json`` in the store directory)."""
    file = path / SETTINGS
    return json.loads(file.read_text()) if file.is_file() else {}


def keep_settings(path: Path, **changes) -> None:
    """Change some of the store's kept settings (the app keeps its theme and the new-run form's
    last launch there too)."""
    fresh = path / f".{SETTINGS}.{os.getpid()}.{threading.get_ident()}"
    fresh.write_text(json.dumps({**settings(path), **changes}, sort_keys=True))
    os.replace(fresh, path / SETTINGS)  # whole or not at all: the app and a command may write at once


def max_parallel(store: Store) -> int:
    return int(settings(store.path).get("max_parallel", 1))


def check_max_parallel(n: int) -> None:
    if n < 1:
        raise HybtuiError(f"--max-parallel must be at least 1 (got {n})")


def set_max_parallel(store: Store, n: int) -> None:
    check_max_parallel(n)
    keep_settings(store.path, max_parallel=n)


def default_backend(path: Path) -> Placement:
    """The backend and options runs of the store at `path` are placed on unless a command says
    otherwise (the app's launches and `hybtui reproduce` included); GPU counts are per run."""
    kept = settings(path).get("backend") or {}
    return Placement(backend=kept.get("name"), options=kept.get("options", {}))


def set_default_backend(store: Store, placement: Placement) -> None:
    """Keep `placement`'s backend and options as the store's default (checked first)."""
    if placement.backend == slurm.BACKEND:
        slurm.check(placement)
    remote = placement.backend not in (None, "local")
    keep_settings(
        store.path, backend={"name": placement.backend, "options": dict(placement.options)} if remote else None
    )


@contextmanager
def _queue_lock(store: Store):
    with open(store.path / "queue.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


#: The intermediate that starts a worker detached and reports its pid (standard library only).
DETACH = Path(__file__).with_name("detach.py")
#: How long starting the intermediate may take before the launch counts as failed.
DETACH_TIMEOUT_S = 60.0
#: What `advance` may raise where the store cannot be written (read-only files, a locked or full
#: database): a command that only reads must still work, so its callers report these and go on.
ADVANCE_ERRORS = (HybtuiError, sqlite3.OperationalError, OSError)


def spawn(store: Store, run: Run, gpus: tuple[str, ...] = ()) -> int:
    """Start the worker process (or torchrun group) of `run`, detached and not our child,
    seeing exactly the GPUs `gpus`; returns its pid (also its process group and session id)."""
    env = {**os.environ, "HYBTUI_STORE": str(store.path)}
    if gpus or not str(run.config_value("device") or "").startswith("cuda"):
        env.update(gpu_pool.worker_environment(gpus))  # a CPU run sees no GPU to take
    command = [
        sys.executable,
        "-I",
        "-S",
        str(DETACH),
        str(store.run_dir(run.id) / LOG),
        *gpu_pool.per_gpu([sys.executable, "-m", "hybtui", "worker", run.id], run.gpu_count),
    ]
    run_id = run.id
    try:
        started = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=DETACH_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HybtuiError(
            f"could not start the worker of run {run_id}: its launcher did not answer within {DETACH_TIMEOUT_S:.0f} s"
        ) from exc
    if started.returncode != 0 or not started.stdout.strip().isdigit():
        reason = (started.stderr.strip().splitlines() or [f"exit status {started.returncode}"])[-1]
        raise HybtuiError(f"could not start the worker of run {run_id}: {reason}")
    return int(started.stdout)


def start_queued(store: Store) -> list[str]:
    """Start queued runs, oldest first, while slots and their GPUs are free; the ids started."""
    started = []
    with _queue_lock(store):
        store.sweep_orphans()
        for run, gpus in schedule(store)[0]:
            pid = spawn(store, run, gpus)
            # Mark it running now (the worker re-stamps itself), so its slot and GPUs count at once.
            store.set_status(run.id, "running", pid=pid, pgid=pid, gpus=",".join(gpus) or None)
            started.append(run.id)
    return started


def schedule(store: Store) -> tuple[list[tuple[Run, tuple[str, ...]]], dict[str, str]]:
    """The queued runs that may start now, each with the GPUs it gets, and why each other
    queued run waits. First come, first served: the oldest run waiting for GPUs keeps the
    free ones for itself, so a run asking for many is never starved by later small ones."""
    queued = _local(store.list_runs(status="queued"))
    if not queued:
        return [], {}  # nothing to place: no GPU pool to read (NVML) for `runs ls` and the app
    limit = max_parallel(store)
    slots = _free_slots(store)
    try:
        available, unknown = list(gpu_pool.free(store)), None
    except HybtuiError as exc:  # a malformed HYBTUI_GPUS: runs needing GPUs wait, and say why
        available, unknown = [], str(exc)
    starts, waiting = [], {}
    reserved = False
    for run in reversed(queued):  # list_runs is newest first
        need = run.gpu_count or 0
        if slots <= 0:
            waiting[run.id] = f"waiting for a slot (max-parallel {limit})"
        elif need and (reserved or need > len(available)):
            waiting[run.id] = unknown or _gpu_wait(need, len(available), reserved)
            reserved = True
        else:
            starts.append((run, tuple(available[:need])))
            del available[:need]
            slots -= 1
    return starts, waiting


def _gpu_wait(need: int, free: int, behind: bool) -> str:
    wanted = f"waiting for {need} GPU{'s' if need > 1 else ''}"
    return f"{wanted} (behind an older run)" if behind else f"{wanted} ({free} free)"


def advance(store: Store) -> list[str]:
    """Fill every free slot: sweep dead workers (a crash frees its slot and GPUs), then start
    queued runs. The ids started; a cheap read when nothing is queued or no slot is free, and
    a no-op on a store that cannot be written."""
    if store.read_only:
        return []
    sweep(store)
    if not store.list_runs(status="queued", limit=1) or _free_slots(store) <= 0:
        return []
    return start_queued(store)


def sweep(store: Store) -> None:
    """End the runs whose process or job is gone: remote runs after taking in their journals
    (their end may be there), local ones by their pid."""
    journal.ingest_all(store)  # what remote workers reported, before anything judges their runs
    slurm.sweep(store)
    store.sweep_orphans()


def _free_slots(store: Store) -> int:
    return max_parallel(store) - len(_local(store.list_runs(status="running")))


def _local(runs: list[Run]) -> list[Run]:
    """The runs this host's queue places (a scheduler places the remote ones)."""
    return [run for run in runs if not run.remote]


def enqueue(store: Store, config: RunConfig, name: str | None = None, placement: Placement | None = None) -> str:
    """Record a queued run placed as asked (None: on the store's default backend); a Slurm run
    is checked first and submitted at once, and not kept if sbatch refuses it."""
    placement = placement if placement is not None else default_backend(store.path)
    if placement.backend == slurm.BACKEND:
        slurm.check(placement)
    run_id = store.create_run(config, name=name or config.name, placement=placement)
    if placement.backend == slurm.BACKEND:
        try:
            slurm.submit(store, run_id)
        except BaseException:
            store.delete_run(run_id)
            raise
    return run_id


def submit(store: Store, config: RunConfig, name: str | None = None, placement: Placement | None = None) -> str:
    """Queue a run and start it if a slot and the GPUs it asks for are free (a Slurm run: submit its job)."""
    run_id = enqueue(store, config, name, placement)
    start_queued(store)
    return run_id


def start_here(store: Store, config: RunConfig, placement: Placement) -> str:
    """Record a run that this process trains now (a foreground `hybtui train`), holding GPUs
    free now; this process then sees exactly those. Refused where they are not free: the
    queue (`--detach`) waits for them instead."""
    with _queue_lock(store):
        store.sweep_orphans()
        available = gpu_pool.free(store)
        if placement.gpu_count > len(available):
            held = gpu_pool.held(store)
            raise HybtuiError(
                f"--gpus {placement.gpu_count}: only {len(available)} GPU(s) are free now "
                f"({', '.join(f'{g} held by run {r}' for g, r in sorted(held.items())) or 'none held'}); "
                "add --detach to queue the run until they are"
            )
        gpus = available[: placement.gpu_count]
        run_id = store.create_run(config, status="running", placement=placement, gpus=gpus)
    if gpus or not config.device.startswith("cuda"):
        os.environ.update(gpu_pool.worker_environment(gpus))
    return run_id


def cancel(store: Store, run_id: str) -> str:
    """Queued runs are cancelled at once; running ones get SIGTERM (checkpoint, then exit;
    the worker then starts the next queued run). A worker found gone is swept as crashed and
    its slot filled at once."""
    run = store.get_run(run_id)
    if run.status not in ("queued", "running"):
        raise HybtuiError(f"run {run.id} is {run.status}; only queued or running runs can be cancelled")
    if run.backend == slurm.BACKEND and run.job_id:
        return slurm.cancel(store, run)
    if run.status == "queued":
        store.set_status(run.id, "cancelled")
        return "cancelled"
    try:
        os.killpg(run.pgid or run.pid, signal.SIGTERM)
    except ProcessLookupError:
        advance(store)
        return store.get_run(run.id)["status"]
    return "cancelling"


def delete(store: Store, run_id: str) -> None:
    """Delete a run that is not running, then fill the slots: a run whose worker died unnoticed
    still reads `running` until a sweep, so sweep first — it is crashed, and deletable."""
    store.sweep_orphans()
    store.delete_run(run_id)
    advance(store)


def wait(store: Store, run_id: str, timeout: float, states=TERMINAL_STATUSES) -> str:
    """Poll until the run reaches one of `states` (for tests and `--wait`)."""
    deadline = time.monotonic() + timeout
    while True:
        sweep(store)
        status = store.get_run(run_id).status
        if status in states or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def resume(store: Store, run_id: str) -> None:
    """Queue a crashed or cancelled run again; its worker continues from the newest complete
    checkpoint (or step 0), and the record keeps exactly the steps up to it."""
    run = store.get_run(run_id)
    if run.status not in ("crashed", "cancelled"):
        raise HybtuiError(f"run {run.id} is {run.status}; only crashed or cancelled runs can be resumed")
    checkpoint = checkpoints.latest_resumable(store.run_dir(run.id))
    store.requeue(run.id, checkpoints.step_of(checkpoint) if checkpoint else 0)
    if run.backend == slurm.BACKEND:
        slurm.submit(store, run.id)  # a new job, from the checkpoint
    start_queued(store)


def log_path(store: Store, run_id: str) -> Path:
    return store.run_dir(run_id) / LOG
