"""Start, queue, cancel and resume workers.

A worker is `python -m hybtui worker RUN_ID` in its own session (so its own process
group): closing the terminal or the app that launched it does not stop it, and
cancelling signals the whole group (torchrun children included). Runs wait as
`queued` until fewer than `max_parallel` runs are `running`; whoever frees a slot —
a finishing worker, the CLI, the app — calls `start_queued`, under a file lock so two
callers never overfill the slots.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.store import TERMINAL_STATUSES, Store

SETTINGS = "settings.json"
LOG = "worker.log"


def max_parallel(store: Store) -> int:
    path = store.path / SETTINGS
    return int(json.loads(path.read_text()).get("max_parallel", 1)) if path.is_file() else 1


def check_max_parallel(n: int) -> None:
    if n < 1:
        raise HybtuiError(f"--max-parallel must be at least 1 (got {n})")


def set_max_parallel(store: Store, n: int) -> None:
    check_max_parallel(n)
    (store.path / SETTINGS).write_text(json.dumps({"max_parallel": n}))


@contextmanager
def _queue_lock(store: Store):
    with open(store.path / "queue.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def spawn(store: Store, run_id: str) -> int:
    """Start the worker process for `run_id`, detached; returns its pid."""
    log = open(store.run_dir(run_id) / LOG, "ab")
    env = {**os.environ, "HYBTUI_STORE": str(store.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "hybtui", "worker", run_id],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env=env, close_fds=True,
    )
    log.close()
    return process.pid


def start_queued(store: Store) -> list[str]:
    """Start queued runs, oldest first, while slots are free; the ids started."""
    started = []
    with _queue_lock(store):
        store.sweep_orphans()
        free = max_parallel(store) - len(store.list_runs(status="running"))
        for run in reversed(store.list_runs(status="queued")):  # list_runs is newest first
            if free <= 0:
                break
            pid = spawn(store, run["id"])
            # Mark it running now (the worker re-stamps itself), so the slot counts at once.
            store.set_status(run["id"], "running", pid=pid, pgid=pid)
            started.append(run["id"])
            free -= 1
    return started


def submit(store: Store, config: RunConfig, name: str | None = None) -> str:
    """Queue a run and start it if a slot is free."""
    run_id = store.create_run(config, name=name or config.name)
    start_queued(store)
    return run_id


def cancel(store: Store, run_id: str) -> str:
    """Queued runs are cancelled at once; running ones get SIGTERM (checkpoint, then exit)."""
    run = store.get_run(run_id)
    if run["status"] == "queued":
        store.set_status(run["id"], "cancelled")
        return "cancelled"
    if run["status"] != "running":
        raise HybtuiError(f"run {run['id']} is {run['status']}; only queued or running runs can be cancelled")
    try:
        os.killpg(run["pgid"] or run["pid"], signal.SIGTERM)
    except ProcessLookupError:
        store.sweep_orphans()
        return store.get_run(run["id"])["status"]
    return "cancelling"


def wait(store: Store, run_id: str, timeout: float, states=TERMINAL_STATUSES) -> str:
    """Poll until the run reaches one of `states` (for tests and `--wait`)."""
    deadline = time.monotonic() + timeout
    while True:
        store.sweep_orphans()
        status = store.get_run(run_id)["status"]
        if status in states or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def resume(store: Store, run_id: str) -> None:
    """Queue a crashed or cancelled run again; its worker continues from the newest complete
    checkpoint (or step 0), and the record keeps exactly the steps up to it."""
    from hybtui import checkpoints

    run = store.get_run(run_id)
    if run["status"] not in ("crashed", "cancelled"):
        raise HybtuiError(f"run {run['id']} is {run['status']}; only crashed or cancelled runs can be resumed")
    checkpoint = checkpoints.latest_resumable(store.run_dir(run["id"]))
    store.requeue(run["id"], checkpoints.step_of(checkpoint) if checkpoint else 0)
    start_queued(store)


def log_path(store: Store, run_id: str) -> Path:
    return store.run_dir(run_id) / LOG
