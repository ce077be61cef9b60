"""Typed run records: a run's status and life cycle, the full ``Run`` and the run list's
``RunSummary``, as the store hands them out (frozen: a record is what was read, at once).

A record keeps its configuration as recorded (``config``: the stored JSON object, shown and
exported as written); ``run_config()`` is that configuration validated as a RunConfig, the
form a worker trains from. A configuration that cannot be read (not a strict JSON object:
written by something else) leaves ``config`` empty and says why in ``config_error``, so one
bad row never hides the other runs.
"""

from __future__ import annotations

import functools
import json
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError, UnreadableConfig

#: A running run whose heartbeat is older than this is shown as stalled.
STALL_AFTER_S = 60.0
#: What a run shows in place of its configuration fields when that cannot be read.
UNREADABLE = "unreadable config"


class RunStatus(StrEnum):
    """queued → running → finished | failed | cancelled | crashed, queued → cancelled, and
    a cancelled or crashed run can be resumed (queued or started again)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"

    @property
    def ended(self) -> bool:
        """The current attempt has ended (cancelled and crashed runs can be resumed)."""
        return self in TERMINAL_STATUSES

    @property
    def next(self) -> frozenset[RunStatus]:
        """The statuses this one may become."""
        return TRANSITIONS[self]


TERMINAL_STATUSES = (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CRASHED)
TRANSITIONS = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CRASHED}),
    RunStatus.FINISHED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset({RunStatus.QUEUED, RunStatus.RUNNING}),
    RunStatus.CRASHED: frozenset({RunStatus.QUEUED, RunStatus.RUNNING}),
}


def run_status(value: str) -> RunStatus:
    """The status named ``value``, or a clear error listing the statuses."""
    try:
        return RunStatus(value)
    except ValueError:
        raise HybtuiError(f"unknown run status '{value}'; one of {', '.join(RunStatus)}") from None


def this_host() -> str:
    """The host name recorded with a running run: pids are only judged on their own host."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process exists on this host (a process we may not signal exists too).

    A zombie — exited, not yet reaped by its parent — is dead: a worker killed with -9
    whose parent never waits for it must still be swept as crashed.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust the signal
    return state != "Z"


@dataclass(frozen=True)
class RunState(Mapping):
    """What every run record carries: identity, status, process and progress.

    Code reads a record by attribute (``run.status``). A record is also a read-only mapping
    of its columns, in the order the table or query gives them (``KEYS``): that is its JSON
    form (``{**run, "stalled": ...}``), the same as the row it was read from."""

    KEYS: ClassVar[tuple[str, ...]]

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    id: str
    name: str | None
    status: RunStatus
    created_at: float
    started_at: float | None
    ended_at: float | None
    heartbeat_at: float | None
    pid: int | None
    host: str | None
    step: int | None
    total_steps: int | None
    #: the GPUs a running run holds (device ids, comma-separated), its backend (None: this
    #: host) and the scheduler's job id
    gpus: str | None
    backend: str | None
    job_id: str | None

    @property
    def remote(self) -> bool:
        """Executed by a scheduler (possibly on another host): it reports through its journal."""
        return self.backend is not None and self.backend != "local"

    @property
    def devices(self) -> str:
        """Where the run executes, for a list: its GPUs, its scheduler job, or nothing."""
        parts = [f"gpu {self.gpus}"] if self.gpus else []
        if self.remote:
            parts.append(f"{self.backend} {self.job_id or '…'}")
        return " ".join(parts)


@dataclass(frozen=True)
class Placement:
    """Where a run is to execute: how many GPUs it asks for, its backend (None: a worker on
    this host) and that backend's options (e.g. Slurm's partition and time limit)."""

    gpu_count: int = 0
    backend: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The runs table's columns for it."""
        return {
            "gpu_count": self.gpu_count,
            "backend": self.backend,
            "placement": json.dumps(dict(self.options), sort_keys=True) if self.options else None,
        }


def is_stalled(run: RunState, now: float | None = None) -> bool:
    """A running run whose process is alive but whose heartbeat is older than STALL_AFTER_S.

    Computed, never stored: the run may recover. On another host the process cannot be
    checked, so the heartbeat alone decides; a dead process here is the sweep's business.
    """
    if run.status != RunStatus.RUNNING:
        return False
    if run.host == this_host() and (run.pid is None or not pid_alive(run.pid)):
        return False
    last = run.heartbeat_at or run.started_at or run.created_at
    return (time.time() if now is None else now) - last > STALL_AFTER_S


@dataclass(frozen=True)
class Run(RunState):
    """A stored run: every column of its row, in the table's order (``as_dict`` and the
    JSON outputs keep it), its configuration as recorded, and why that cannot be read."""

    config: dict[str, Any] = field(repr=False)
    pgid: int | None
    exit_code: int | None
    error: str | None
    parent_id: str | None
    gpu_count: int | None
    placement: str | None
    journal_offset: int | None
    config_error: str | None

    #: The column order of the runs table (what `SELECT *` returns), then config_error.
    KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "name",
        "config",
        "status",
        "created_at",
        "started_at",
        "ended_at",
        "pid",
        "pgid",
        "host",
        "heartbeat_at",
        "exit_code",
        "error",
        "parent_id",
        "step",
        "total_steps",
        "gpu_count",
        "gpus",
        "backend",
        "placement",
        "job_id",
        "journal_offset",
        "config_error",
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        """From a row of the runs table, its configuration decoded."""
        config, error = decode_config(row["config"])
        return cls(**{**row, "status": RunStatus(row["status"]), "config": config, "config_error": error})

    def run_config(self) -> RunConfig:
        """The recorded configuration as a validated RunConfig (what a worker trains from)."""
        if self.config_error:
            raise UnreadableConfig(f"run {self.id}: {self.config_error}")
        return RunConfig.from_dict(self.config)

    @property
    def placement_of(self) -> Placement:
        """Where it was asked to execute (a resume executes there again)."""
        options = json.loads(self.placement) if self.placement else {}
        return Placement(self.gpu_count or 0, self.backend, options)

    def config_value(self, key: str) -> Any:
        """A configuration field, or UNREADABLE for the model where the configuration cannot
        be read (its other fields are then empty)."""
        if self.config_error:
            return UNREADABLE if key == "model" else None
        return self.config.get(key)


@dataclass(frozen=True)
class RunSummary(RunState):
    """A line of the run list (``Store.run_overview``): the status columns, the configuration
    fields a list shows (model / sampler / alpha / train / eval, each of the type it shows; the model
    is UNREADABLE where the configuration cannot be read) and the final headline figures
    {bench: {(setting, metric): value}}."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "name",
        "status",
        "created_at",
        "started_at",
        "ended_at",
        "heartbeat_at",
        "pid",
        "host",
        "step",
        "total_steps",
        "gpus",
        "backend",
        "job_id",
        "model",
        "sampler",
        "alpha",
        "train",
        "eval",
        "config_error",
        "figures",
    )

    model: str | None
    sampler: str | None
    alpha: float | None
    train: tuple[str, ...]
    eval: tuple[str, ...]
    config_error: str | None
    figures: dict[str, dict[tuple[str, str], float]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_config(text: str | None) -> tuple[dict[str, Any], str | None]:
    """(configuration, None), or ({}, why) where it is not a strict JSON object."""
    try:
        config = json.loads(text, parse_constant=_reject_constant)
    except (TypeError, ValueError) as exc:
        return {}, f"{UNREADABLE}: {exc}"
    if not isinstance(config, dict):
        return {}, f"{UNREADABLE}: not a JSON object"
    return config, None


@functools.lru_cache(maxsize=1024)
def _specs(column: Any) -> tuple[str, ...]:
    """A JSON array of benchmark specs as strings (none where unreadable). Cached: a store's
    runs share a handful of spec lists, and the run list reads every run at each refresh."""
    try:
        specs = json.loads(column) if column else []
    except ValueError:
        specs = []
    return tuple(str(spec) for spec in specs)


def summary_config(readable: int, model: Any, sampler: Any, alpha: Any, train: Any, evaluated: Any) -> dict[str, Any]:
    """The run list's configuration fields, each of the type it shows."""
    return {
        "model": UNREADABLE if not readable else None if model is None else str(model),
        "sampler": sampler if isinstance(sampler, str) else None,
        "alpha": alpha if isinstance(alpha, (int, float)) and math.isfinite(alpha) else None,
        "train": _specs(train),
        "eval": _specs(evaluated),
        "config_error": None if readable else UNREADABLE,
    }
