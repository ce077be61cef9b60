"""The subprocess that executes one run from its stored config and reports into the store.

Started by the launcher as `hybtui worker RUN_ID` in its own session and process group,
with stdout/stderr going to the run's log. It marks the run `running`, beats a
heartbeat from a thread, writes metrics in small batches (at most about a second
behind), and ends the run `finished`, `cancelled` (on SIGTERM, after a checkpoint) or
`failed` (with the traceback as an event). When it is done it asks the launcher to
start the next queued run, so the queue advances with no app or CLI open.

A failure's cause must survive the store failing too (disk full, lock timeout): the
worker logs every phase, checkpoint, end and traceback into the run's `worker.log`
(no database involved), and writes its end into the run's preallocated outcome file
(`outcome.json`, see hybtui.runs.outcome) before it asks the store; the next orphan sweep ends the run from
that file if the store could not take it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from hybtui import faults
from hybtui.config import RunConfig
from hybtui.errors import HybtuiError, StoreError
from hybtui.results import ResultRow
from hybtui.runs import gpus as gpu_pool
from hybtui.runs import launcher
from hybtui.runs.outcome import OutcomeRecord
from hybtui.runs.query_files import QueryFiles
from hybtui.runs.recorder import JournalRecorder, read_snapshot
from hybtui.runs.records import Run
from hybtui.runs.store import Store
from hybtui.training import checkpoint as checkpoints
from hybtui.training.callbacks import Events, StepReport, Tee, eval_progress_text
from hybtui.training.distributed import is_peer_loss
from hybtui.training.trainer import Trainer

HEARTBEAT_S = 5.0
FLUSH_S = 1.0
#: How often, and how far apart, each step of ending a run is tried against the store.
STORE_RETRIES = 3
STORE_RETRY_S = 1.0

log = logging.getLogger(__name__)


#: Where a worker reports: the store on its own host, or the run's journal on another host.
Recorder = Store | JournalRecorder


@dataclass(frozen=True)
class Channel:
    """A worker's reporting: its recorder, one for the heartbeat thread (a store connection is
    one thread's), and what to do once the run ended (start the next queued run; nothing on
    another host, where the store must not be opened)."""

    recorder: Recorder
    for_thread: Callable[[], AbstractContextManager[Recorder]]
    after: Callable[[], object] | None


class StoreEvents(Events):
    """Trainer events as store rows, buffered so each write is one short transaction."""

    def __init__(self, store: Recorder, run_id: str):
        self.store = store
        self.run_id = run_id
        self._pending: list[tuple[str, int, float]] = []
        self._last_flush = time.monotonic()

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
        self.store.add_event(self.run_id, "info", f"training steps {start_step + 1}–{total_steps}")

    def on_step(self, report: StepReport) -> None:
        self._add(
            report.step,
            loss=report.loss,
            lr=report.lr,
            grad_norm=report.grad_norm,
            pairs_per_s=report.pairs_per_s,
            mono=1.0 if report.batch_type == "mono" else 0.0,
        )

    def on_validation(self, step: int, loss: float) -> None:
        self._add(step, validation_loss=loss)

    def on_eval(self, step: int, rows: list[ResultRow], final: bool) -> None:
        """The rows, then their end as an event: with the event that began the evaluation, the
        app measures what an evaluation costs (its ETA counts those still to come)."""
        self.flush()
        self.store.add_results(self.run_id, rows, step, final)
        self.store.add_event(self.run_id, "info", f"step {step}: {'final' if final else 'periodic'} evaluation done")

    def on_eval_progress(self, step: int, final: bool, label: str, done: int, total: int) -> None:
        self.store.add_event(self.run_id, "info", eval_progress_text(step, final, label, done, total))

    def before_checkpoint(self, step: int) -> None:
        self.flush()

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Record the checkpoint (once: a resume re-announces the one it starts from)."""
        if not any(a["step"] == step for a in self.store.artifacts(self.run_id, "checkpoint")):
            self.store.add_artifact(self.run_id, "checkpoint", str(path), step)

    def on_checkpoint_removed(self, step: int, path: Path) -> None:
        self.store.remove_artifacts(self.run_id, "checkpoint", step)

    def on_message(self, text: str) -> None:
        self.store.add_event(self.run_id, "info", text)


class LogEvents(Events):
    """Trainer events as lines of the run's own log, which needs no database: what a run
    went through stays readable when the store cannot be written. Listens first, so a
    line is logged before the store is asked to take it."""

    def __init__(self, step: int = 0, every: int = 50):
        self.step = step  # the last completed step: the step an ended run records
        self.every = every

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.step = start_step
        log.info("training steps %d–%d", start_step + 1, total_steps)

    def on_step(self, report: StepReport) -> None:
        self.step = report.step
        if report.step % self.every == 0 or report.step == 1:
            log.info(
                "step %d: loss %.4f, lr %.3g, %.1f pairs/s", report.step, report.loss, report.lr, report.pairs_per_s
            )

    def on_validation(self, step: int, loss: float) -> None:
        log.info("step %d: validation loss %.4f", step, loss)

    def on_eval(self, step: int, rows: list[ResultRow], final: bool) -> None:
        log.info("step %d: %s evaluation done (%d result rows)", step, "final" if final else "periodic", len(rows))

    def on_eval_progress(self, step: int, final: bool, label: str, done: int, total: int) -> None:
        log.info("%s", eval_progress_text(step, final, label, done, total))

    def on_checkpoint(self, step: int, path: Path) -> None:
        log.info("step %d: checkpoint saved to %s", step, path)

    def on_message(self, text: str) -> None:
        log.info("%s", text)


@contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """Log hybtui's messages (timestamped) into the run's ``worker.log``, and only there:
    a foreground ``hybtui train`` keeps its terminal for the progress display."""
    logger = logging.getLogger("hybtui")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        handler.close()


def _attempt(what: str, action: Callable[[], object]) -> None:
    """Run one step of ending a run, retrying briefly while the store refuses (a lock held
    too long, a disk being freed); log and go on if it still fails, so each later step is
    attempted too."""
    for attempt in range(1, STORE_RETRIES + 1):
        try:
            action()
            return
        except Exception as exc:
            log.error("could not %s (try %d of %d): %s: %s", what, attempt, STORE_RETRIES, type(exc).__name__, exc)
            if attempt == STORE_RETRIES or not isinstance(exc, (sqlite3.Error, StoreError, OSError)):
                return
            time.sleep(STORE_RETRY_S)


def _heartbeat(channel: Channel, run_id: str, progress: LogEvents, stop: threading.Event) -> None:
    """Beat from a thread (with its own store connection where it writes the store), so a long
    step never looks stalled; a beat that is refused is logged and the next one tried. Where
    the worker writes the store, each beat also advances the queue: a neighbour that crashed
    hands its slot and GPUs on within seconds, with no app or CLI open. Each beat also samples
    the worker's GPUs (NVML; nothing where there is none) into the run's telemetry."""
    gpus = gpu_pool.visible()
    with channel.for_thread() as recorder:
        while not stop.wait(HEARTBEAT_S):
            try:
                recorder.heartbeat(run_id, progress.step)
                if gpus:
                    recorder.add_telemetry(run_id, gpu_pool.sample(gpus))
                if isinstance(recorder, Store):
                    launcher.advance(recorder)
            except (sqlite3.Error, StoreError, OSError) as exc:
                log.warning("heartbeat not recorded: %s: %s", type(exc).__name__, exc)
            except HybtuiError as exc:
                log.warning("the queue could not advance: %s", exc)


def _error_text(exc: BaseException) -> str:
    """The error a run records: a store error already names the file; a disk-full SQLite
    error says so in words."""
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:
        return f"{type(exc).__name__}: {exc} (No space left on device for the store)"
    return f"{type(exc).__name__}: {exc}"


def _open_outcome(run_dir: Path) -> OutcomeRecord | None:
    try:
        return OutcomeRecord(run_dir, os.getpid())
    except OSError as exc:
        log.warning("no outcome record (%s): an end the store cannot take would be lost", exc)
        return None


def train_unrecorded(config: RunConfig, resume_from: Path | None = None) -> None:
    """A data-parallel rank other than 0 (under torchrun): it trains in step with rank 0,
    which records the run, and records nothing itself."""
    Trainer(config, Path(tempfile.mkdtemp(prefix="hybtui-rank-"))).run(resume_from=resume_from)


def _resume_point(run: Run, out: Path) -> Path | None:
    """The checkpoint a run continues from: that of the step `Store.requeue` recorded (the
    record holds exactly the steps up to it; later checkpoints are removed by the trainer)."""
    resume_from = checkpoints.path_for(out, run.step or 0)
    return resume_from if checkpoints.is_resumable(resume_from) else None


def run_worker(store_path: Path, run_id: str, console: Events | None = None) -> int:
    """Execute run `run_id`; the process exit code (0 finished or cancelled, 1 failed).

    The detached worker and a foreground `hybtui train` both run through here; the
    foreground one also passes its console display, and Ctrl-C cancels like SIGTERM.
    Every phase goes to the run's ``worker.log``; the end goes to the log and the
    outcome file first, then to the store, each step attempted on its own.
    """
    faults.arm()
    store = Store(store_path)
    run = store.get_run(run_id)
    out = store.run_dir(run.id)
    if _other_rank():
        store.close()
        train_unrecorded(run.run_config(), _resume_point(run, out))
        return 0
    channel = Channel(store, lambda: Store(store.path), lambda: launcher.start_queued(store))
    with _run_log(out / launcher.LOG):
        try:
            return _execute(channel, run, out, console)
        finally:
            store.close()


def run_journal_worker(run_dir: Path, run_id: str) -> int:
    """Execute run `run_id` on a host that shares only the run directory with the store: read
    its snapshot, report into its journal (`hybtui.runs.journal`), never open the store. The
    store's host starts queued runs; this worker starts none."""
    faults.arm()
    if _other_rank():
        snapshot = read_snapshot(run_dir)
        if snapshot is None:
            raise HybtuiError(f"no readable snapshot in {run_dir}: a remote worker starts from one")
        run = Run.from_row(snapshot["run"])
        train_unrecorded(run.run_config(), _resume_point(run, run_dir))
        return 0
    recorder = JournalRecorder(run_dir)
    try:
        run = recorder.get_run(run_id)
        with _run_log(run_dir / launcher.LOG):
            return _execute(Channel(recorder, lambda: nullcontext(recorder), None), run, run_dir, None)
    finally:
        recorder.close()


def _other_rank() -> bool:
    """A torchrun group's rank other than 0: it trains in step with rank 0, which records."""
    return int(os.environ.get("RANK", "0")) != 0


def _execute(channel: Channel, run: Run, out: Path, console: Events | None) -> int:
    resume_from = _resume_point(run, out)
    start_step = checkpoints.step_of(resume_from) if resume_from is not None else 0
    store = channel.recorder
    if run.status != "running":
        store.set_status(run.id, "running", pid=os.getpid(), pgid=os.getpgid(0), host=socket.gethostname())
    elif run.pid != os.getpid():  # rank 0 of a torchrun group: a cancel signals it, and all ranks stop
        store.adopt(run.id, os.getpid(), os.getpgid(0), socket.gethostname())
    # Each attempt but a foreground run's first (created running) is one "→ running" event.
    attempt = max(1, sum(e["message"].endswith("→ running") for e in store.events(run.id)))
    log.info(
        "worker %d on %s: run %s, attempt %d, %s",
        os.getpid(),
        socket.gethostname(),
        run.id,
        attempt,
        f"resuming from {resume_from} (step {start_step})" if resume_from else "starting at step 0",
    )
    outcome = _open_outcome(out)
    progress = LogEvents(start_step)
    events = StoreEvents(store, run.id)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(channel, run.id, progress, stop), daemon=True)
    beat.start()
    listeners = (progress, events, QueryFiles(out), *([console] if console else []))
    try:
        config = run.run_config()  # refused where it cannot be read: never train the defaults instead
        log.info("configuration: %s", json.dumps(config.to_dict(), sort_keys=True))
        log.info("loading data")
        trainer = Trainer(config, out, Tee(*listeners))
        # The device and precision the run trains in, as resolved (the configuration may say "auto").
        for said in (f"device {trainer.device}", trainer.precision.event()):
            progress.on_message(said)
            events.on_message(said)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: trainer.request_stop())
        if resume_from is not None:
            events.on_checkpoint(start_step, resume_from)  # a kill may have come before its record
        log.info("loading the model")
        result = trainer.run(resume_from=resume_from)
        _end(store, run.id, outcome, events, result.status, result.step, 0)
        return 0
    except BaseException as exc:
        trace = "".join(traceback.format_exception(exc))
        log.error("failed at step %d:\n%s", progress.step, trace.rstrip())
        for partial in checkpoints.drop_staging(out):  # its space is what recording the failure needs
            log.info("removed the partial checkpoint %s", partial)
        # A rank of a torchrun group that died (killed, out of memory) is a crash of the run.
        ended = "crashed" if is_peer_loss(exc) else "failed"
        _end(store, run.id, outcome, events, ended, progress.step, 1, _error_text(exc), trace)
        if isinstance(exc, HybtuiError) and console is not None:
            raise
        return 1
    finally:
        stop.set()
        if channel.after is not None:
            _attempt("start the next queued run", channel.after)
        if outcome is not None:
            outcome.close()


def _end(
    store: Recorder,
    run_id: str,
    outcome: OutcomeRecord | None,
    events: StoreEvents,
    status: str,
    step: int,
    exit_code: int,
    error: str | None = None,
    trace: str | None = None,
) -> None:
    """Record how the run ended: the outcome file first (it survives a full disk), then
    the store — pending metrics, the traceback, the status — each attempted on its own."""
    log.info("run %s %s at step %d%s", run_id, status, step, f": {error}" if error else "")
    if outcome is not None:
        _attempt("write the outcome record", lambda: outcome.record(status, step, exit_code, error))
    _attempt("record the last metrics", events.flush)
    if trace is not None:
        _attempt("record the traceback", lambda: store.add_event(run_id, "error", trace))
    _attempt(
        f"record the status {status}",
        lambda: store.set_status(run_id, status, exit_code=exit_code, error=error, step=step),
    )
