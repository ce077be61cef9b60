"""The subprocess that executes one run from its stored config and reports into the store.

Started by the launcher as `hybtui worker RUN_ID` in its own session and process group,
with stdout/stderr going to the run's log. It marks the run `running`, beats a
heartbeat from a thread, writes metrics in small batches (at most about a second
behind), and ends the run `finished`, `cancelled` (on SIGTERM, after a checkpoint) or
`failed` (with the traceback as an event). When it is done it asks the launcher to
start the next queued run, so the queue advances with no app or CLI open.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback
from pathlib import Path

from hybtui import launcher
from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.evaluate import ResultRow
from hybtui.store import Store
from hybtui.train import Events, StepReport, Tee, Trainer, latest_checkpoint

HEARTBEAT_S = 5.0
FLUSH_S = 1.0


class StoreEvents(Events):
    """Trainer events as store rows, buffered so each write is one short transaction."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        self.run_id = run_id
        self._pending: list[tuple[str, int, float]] = []
        self._last_flush = time.monotonic()
        self.step = 0

    def flush(self) -> None:
        if self._pending:
            self.store.add_metrics(self.run_id, self._pending)
            self._pending = []
        self._last_flush = time.monotonic()

    def _add(self, step: int, **values: float) -> None:
        self._pending += [(key, step, float(value)) for key, value in values.items()]
        if time.monotonic() - self._last_flush >= FLUSH_S:
            self.flush()

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.step = start_step
        self.store.add_event(self.run_id, "info", f"training steps {start_step + 1}–{total_steps}")

    def on_step(self, report: StepReport) -> None:
        self.step = report.step
        self._add(report.step, loss=report.loss, lr=report.lr, grad_norm=report.grad_norm,
                  pairs_per_s=report.pairs_per_s, mono=1.0 if report.batch_type == "mono" else 0.0)

    def on_validation(self, step: int, loss: float) -> None:
        self._add(step, validation_loss=loss)

    def on_eval(self, step: int, rows: list[ResultRow], final: bool) -> None:
        self.flush()
        self.store.add_results(self.run_id, rows, step, final)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.flush()
        self.store.add_artifact(self.run_id, "checkpoint", str(path), step)

    def on_message(self, text: str) -> None:
        self.store.add_event(self.run_id, "info", text)


def _heartbeat(store_path: Path, run_id: str, events: StoreEvents, stop: threading.Event) -> None:
    """Beat from a thread with its own connection, so a long step never looks stalled."""
    with Store(store_path) as store:
        while not stop.wait(HEARTBEAT_S):
            store.heartbeat(run_id, events.step)


def run_worker(store_path: Path, run_id: str, console: Events | None = None) -> int:
    """Execute run `run_id`; the process exit code (0 finished or cancelled, 1 failed).

    The detached worker and a foreground `hybtui train` both run through here; the
    foreground one also passes its console display, and Ctrl-C cancels like SIGTERM.
    """
    store = Store(store_path)
    run = store.get_run(run_id)
    if run["config_error"]:  # never train the defaults in place of a configuration that cannot be read
        raise HybtuiError(f"run {run['id']}: {run['config_error']}")
    config = RunConfig.from_dict(run["config"])
    out = store.run_dir(run["id"])
    resume_from = latest_checkpoint(out)
    if run["status"] != "running" or run["pid"] != os.getpid():
        store.set_status(run["id"], "running", pid=os.getpid(), pgid=os.getpgid(0), host=socket.gethostname())
    events = StoreEvents(store, run["id"])
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store_path, run["id"], events, stop), daemon=True)
    beat.start()
    try:
        trainer = Trainer(config, out, Tee(events, console) if console else events)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: trainer.request_stop())
        if resume_from is not None:
            # Rows past the checkpoint were written by the interrupted attempt; the
            # resumed run recomputes exactly those steps.
            store.truncate_metrics(run["id"], after_step=int(resume_from.name.split("-")[-1]))
        result = trainer.run(resume_from=resume_from)
        events.flush()
        store.set_status(run["id"], result.status, exit_code=0, step=result.step)
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the store
        events.flush()
        store.add_event(run["id"], "error", "".join(traceback.format_exception(exc)))
        store.set_status(run["id"], "failed", exit_code=1, error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, HybtuiError) and console is not None:
            raise
        return 1
    finally:
        stop.set()
        launcher.start_queued(store)
        store.close()
