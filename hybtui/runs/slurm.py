"""Runs executed by Slurm, submitted through submitit: checking a placement, submitting a
run's worker as one job, reading a job's state, cancelling it, and ending the runs whose job
is gone.

A Slurm job may run on another host that shares only a filesystem with the store, so its
worker never opens the SQLite store: it appends to the run's journal (`hybtui.runs.journal`),
which whoever opens the store ingests. Slurm is the queue of these runs: they are submitted
at once, take no local slot or GPU, and stay `queued` until their worker says it runs.
Whether a run's process still lives cannot be told from here (no local pid): a run is ended
by the sweep only when Slurm no longer runs its job and its journal holds no end.
Job states come from `squeue` (never `sacct`: clusters without accounting have none); a job
squeue no longer lists is gone.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hybtui.errors import SlurmError
from hybtui.runs import gpus as gpu_pool
from hybtui.runs import journal
from hybtui.runs.records import Placement, Run
from hybtui.runs.store import Store

BACKEND = "slurm"
#: The placement options a Slurm run may carry (besides its GPU count).
OPTIONS = ("partition", "time", "mem", "cpus")
#: States of a job that is still Slurm's: its worker may yet start, write or end.
ACTIVE = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
    }
)
#: The state of a job squeue no longer lists (it ended longer ago than Slurm's MinJobAge).
GONE = "GONE"
#: Submitit's files (the job script, pickled job, stdout/stderr) inside the run directory.
JOB_FOLDER = "slurm"
#: Marks a cancel asked for a job (holds its id): a job that then ends without a word is cancelled, not crashed.
CANCEL_MARK = "slurm-cancel"
COMMAND_TIMEOUT_S = 30.0
#: Slurm's time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
#: days-hours:minutes, days-hours:minutes:seconds.
TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
MEMORY = re.compile(r"[1-9]\d*[KMGT]?", re.IGNORECASE)
GRES_GPUS = re.compile(r"gpu(?::[^:,(]+)?:(\d+)")


@dataclass(frozen=True)
class Partition:
    """What `sinfo` says of a partition: is it the default, its time limit (minutes; None:
    none) and the most GPUs one of its nodes has."""

    name: str
    default: bool
    max_minutes: int | None
    gpus_per_node: int


def _slurm(*args: str) -> subprocess.CompletedProcess:
    """Run a Slurm command; one that is missing or does not answer is a SlurmError."""
    try:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False
        )
    except FileNotFoundError:
        raise SlurmError(f"--backend slurm needs Slurm's {args[0]} on PATH; it was not found") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"Slurm's {args[0]} did not answer within {COMMAND_TIMEOUT_S:.0f} s") from None


def _output(*args: str) -> str:
    done = _slurm(*args)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise SlurmError(f"{' '.join(args[:1])} failed: {reason}")
    return done.stdout


def minutes(text: str) -> int:
    """A Slurm time limit in whole minutes (rounded up), or a SlurmError saying the formats."""
    match = TIME.fullmatch(text.strip())
    if match is None:
        raise SlurmError(
            f"--time '{text}' is not a Slurm time: give minutes, hours:minutes:seconds or days-hours[:minutes], "
            f"e.g. 90, 4:00:00, 1-12"
        )
    days, first, second, third = match.groups()
    numbers = [int(n) for n in (first, second, third) if n is not None]
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, mins, seconds = [*numbers, 0, 0][:3]
        seconds += 60 * (mins + 60 * (hours + 24 * int(days)))
        units = (mins, seconds % 60) if len(numbers) > 1 else ()
    elif len(numbers) == 3:  # hours:minutes:seconds
        seconds, units = 3600 * numbers[0] + 60 * numbers[1] + numbers[2], numbers[1:]
    else:  # minutes[:seconds]
        seconds, units = 60 * numbers[0] + sum(numbers[1:]), numbers[1:]
    if any(unit >= 60 for unit in units) or seconds <= 0:
        raise SlurmError(f"--time '{text}' is not a usable time limit (minutes and seconds are below 60; not zero)")
    return math.ceil(seconds / 60)


def partitions() -> dict[str, Partition]:
    """The cluster's partitions as `sinfo` lists them (one line per group of alike nodes)."""
    found: dict[str, Partition] = {}
    for line in _output("sinfo", "--noheader", "--format=%P|%l|%G").splitlines():
        name, limit, gres = line.split("|", 2)
        default, name = name.endswith("*"), name.rstrip("*")
        gpus = max([int(n) for n in GRES_GPUS.findall(gres)] or [0])
        known = found.get(name)
        found[name] = Partition(
            name,
            default,
            None if limit in ("infinite", "n/a") else minutes(limit),
            max(gpus, known.gpus_per_node if known else 0),
        )
    return found


def check(placement: Placement) -> None:
    """Refuse, in words, what Slurm would refuse or could never run, before anything is
    written: no sbatch, an unknown partition, a malformed or too long time, a malformed
    memory size, more GPUs than any node of the partition has."""
    if shutil.which("sbatch") is None:
        raise SlurmError("--backend slurm needs Slurm's sbatch on PATH; it was not found")
    options = placement.options
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SlurmError(f"unknown Slurm options {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    limit = minutes(options["time"]) if options.get("time") else None
    if options.get("mem") and not MEMORY.fullmatch(str(options["mem"])):
        raise SlurmError(f"--mem '{options['mem']}' is not a Slurm memory size: a number with K, M, G or T, e.g. 16G")
    if options.get("cpus") is not None and int(options["cpus"]) < 1:
        raise SlurmError(f"--cpus must be at least 1 (got {options['cpus']})")
    partition = _partition(options.get("partition"))
    if limit is not None and partition.max_minutes is not None and limit > partition.max_minutes:
        raise SlurmError(
            f"--time {options['time']} is beyond partition {partition.name}'s limit of {partition.max_minutes} min"
        )
    if placement.gpu_count > partition.gpus_per_node:
        offered = f"at most {partition.gpus_per_node}" if partition.gpus_per_node else "no"
        raise SlurmError(
            f"--gpus {placement.gpu_count}: the nodes of partition {partition.name} have {offered} GPUs (sinfo)"
        )


def _partition(name: str | None) -> Partition:
    """The named partition, or the cluster's default one."""
    known = partitions()
    chosen = known.get(name) if name else next((p for p in known.values() if p.default), None)
    if chosen is None:
        listed = ", ".join(sorted(known)) or "none"
        what = f"unknown Slurm partition '{name}'" if name else "Slurm has no default partition; give --partition"
        raise SlurmError(f"{what}; known partitions: {listed}")
    return chosen


class WorkerJob:
    """What the Slurm job executes (pickled by submitit): the worker command; a worker that
    dies by a signal or fails makes the job fail, so Slurm's state tells it too."""

    def __init__(self, command: list[str]) -> None:
        self.command = command

    def __call__(self) -> None:
        code = subprocess.run(self.command, check=False).returncode
        if code != 0:
            raise RuntimeError(f"the worker exited with status {code}: {' '.join(self.command)}")


def submit(store: Store, run_id: str) -> str:
    """Submit a queued run's worker as a Slurm job and record its id; returns it."""
    import submitit

    run = store.get_run(run_id)
    placement = run.placement_of
    options = placement.options
    journal.write_snapshot(store, run.id)
    executor = submitit.SlurmExecutor(folder=store.run_dir(run.id) / JOB_FOLDER, python=sys.executable)
    executor.update_parameters(
        job_name=f"hybtui-{run.id}",
        partition=options.get("partition"),
        time=minutes(options["time"]) if options.get("time") else None,
        mem=options.get("mem"),
        cpus_per_task=options.get("cpus"),
        gpus_per_node=placement.gpu_count or None,
        nodes=1,
        ntasks_per_node=1,
        # A pre-empted or failed job is not run again by Slurm: the run becomes crashed and
        # `hybtui runs resume` submits a new job from its newest checkpoint.
        additional_parameters={"no_requeue": True},
    )
    try:
        job = executor.submit(WorkerJob(gpu_pool.per_gpu(journal.worker_command(store, run.id), run.gpu_count)))
    except (submitit.core.utils.FailedJobError, OSError, subprocess.SubprocessError) as exc:
        raise SlurmError(f"sbatch refused run {run.id}: {' '.join(str(exc).split())}") from exc
    where = options.get("partition") or "the default partition"
    store.record_job(run.id, str(job.job_id), f"submitted to Slurm as job {job.job_id} ({where})")
    return str(job.job_id)


#: How long an answer of squeue is reused: the app advances the queue at every refresh, and
#: a cluster's controller should not be asked once a second by every open app.
SQUEUE_REUSE_S = 5.0
_answered: dict[str, tuple[float, str]] = {}


def states(job_ids: list[str]) -> dict[str, str]:
    """Each job's state as squeue says it (PENDING, RUNNING, FAILED, ...), GONE for a job it
    no longer lists; one squeue call for all (an answer younger than SQUEUE_REUSE_S is reused)."""
    if not job_ids:
        return {}
    now = time.monotonic()
    if all(job in _answered and now - _answered[job][0] < SQUEUE_REUSE_S for job in job_ids):
        return {job: _answered[job][1] for job in job_ids}
    done = _slurm("squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", "--format=%i|%T")
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        raise SlurmError(f"squeue failed: {done.stderr.strip() or f'exit status {done.returncode}'}")
    listed = dict(line.split("|", 1) for line in done.stdout.split() if "|" in line)
    found = {job: listed.get(job, GONE) for job in job_ids}
    _answered.update((job, (now, state)) for job, state in found.items())
    return found


def state(job_id: str) -> str:
    """One job's state (see `states`)."""
    return states([job_id])[job_id]


def cancel(store: Store, run: Run) -> str:
    """Cancel a run's job. A worker that runs gets SIGTERM only (its job is not killed), so it
    checkpoints and ends itself as `cancelled`, however long that takes; a second cancel, or
    a job whose worker has not started, is cancelled outright (SIGTERM, then SIGKILL after
    Slurm's KillWait). Returns what the run's status is or becomes."""
    mark = store.run_dir(run.id) / CANCEL_MARK
    asked_before = mark.is_file() and mark.read_text() == run.job_id
    mark.write_text(run.job_id or "")
    _answered.pop(run.job_id or "", None)  # what the job does now, not 5 s ago
    if run.status == "running" and not asked_before and state(run.job_id) in ACTIVE:
        _output("scancel", "--signal=TERM", run.job_id)
        store.add_event(run.id, "info", f"cancel: SIGTERM sent to Slurm job {run.job_id}")
        return "cancelling"
    _output("scancel", run.job_id)
    store.add_event(run.id, "info", f"cancel: Slurm job {run.job_id} cancelled")
    if run.status == "queued":
        store.set_status(run.id, "cancelled")
        return "cancelled"
    return "cancelling"


def sweep(store: Store) -> list[str]:
    """End the remote runs whose job has ended or is gone while their journal holds no end
    (the journals were ingested just before): `cancelled` where a cancel was asked, else
    `crashed` (resumable). A squeue that fails leaves every run as it is. Returns their ids."""
    runs = [r for s in ("queued", "running") for r in store.list_runs(status=s) if r.backend == BACKEND and r.job_id]
    if not runs:
        return []
    try:
        found = states([r.job_id for r in runs])
    except SlurmError:
        return []
    ended = [r for r in runs if found[r.job_id] not in ACTIVE]
    if ended:
        journal.ingest_all(store)  # what a worker wrote just before its job ended
    swept = []
    for run in ended:
        if _end_lost(store, store.get_run(run.id), found[run.job_id]):
            swept.append(run.id)
    return swept


def _end_lost(store: Store, run: Run, job_state: str) -> bool:
    """End a run whose job ended without its worker recording an end (one the ingest applied
    meanwhile is kept)."""
    if run.status not in ("queued", "running") or run.job_id is None:
        return False
    mark = store.run_dir(run.id) / CANCEL_MARK
    if mark.is_file() and mark.read_text() == run.job_id:
        return store.end_lost_job(run.id, run.job_id, "cancelled", f"Slurm job {run.job_id} cancelled ({job_state})")
    beat = f"; last heartbeat {time.time() - run.heartbeat_at:.0f} s ago" if run.heartbeat_at else ""
    message = (
        f"Slurm job {run.job_id} is {job_state.lower()} without the worker recording an end{beat}; "
        f"marked crashed (its log: {job_log(store, run)}; resume it with `hybtui runs resume {run.id}`)"
    )
    return store.end_lost_job(run.id, run.job_id, "crashed", message)


def job_log(store: Store, run: Run) -> Path:
    """Submitit's stderr of the run's job (the worker's own log is the run's worker.log)."""
    return store.run_dir(run.id) / JOB_FOLDER / f"{run.job_id}_0_log.err"
