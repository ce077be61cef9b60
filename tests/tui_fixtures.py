"""Shared by the app's tests, the tmux end-to-end test and scripts/capture_screens.py:

* ``build_demo_store``: a run store with fixed, realistic content (fixed run ids, times
  relative to a given ``now``, loss curves, final xquad-r results for all 11 languages);
* ``drive``: the app on a store under Textual's Pilot, once its run list has been read,
  with ``settle``, ``refreshed`` and ``wait_until`` to wait on its workers and on what it
  shows (never on fixed sleeps: the reads and the launcher run in thread workers);
* ``Tmux``: a detached tmux session on a private server, driven with send-keys and read
  with capture-pane.

Not a test module (no ``test_`` prefix); imported as ``tui_fixtures`` (tests/ is on
sys.path under pytest; the script inserts it).
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from hybtui.config import RunConfig
from hybtui.data.lareqa import LANGUAGES
from hybtui.results import AVERAGE, POOL_ALL, ResultRow, macro_averages
from hybtui.runs import grid, launcher
from hybtui.runs.store import Store
from hybtui.tui.app import HybtuiApp
from hybtui.tui.screens.runs import RunsScreen

#: 2026-01-06 12:00:00 UTC: the snapshot tests' "now".
DEMO_NOW = 1767700800.0
#: Languages the demo runs trained on (mlqa-r's), so xquad-r shows seen and unseen ones.
MLQA = LANGUAGES["mlqa-r"]
#: A made-up retrieval quality per query language (higher: easier).
QUALITY = {
    "ar": 0.62,
    "de": 0.74,
    "el": 0.58,
    "en": 0.81,
    "es": 0.76,
    "hi": 0.60,
    "ru": 0.66,
    "th": 0.49,
    "tr": 0.57,
    "vi": 0.69,
    "zh": 0.67,
}

# (name, config, status, created minutes before now, minutes run, step reached, quality shift)
DEMO_RUNS = (
    ("mono-baseline", RunConfig(name="mono-baseline", sampler="mono", steps=1000), "finished", 300, 41, 1000, -0.06),
    (
        "hybrid-a0.5",
        RunConfig(name="hybrid-a0.5", sampler="hybrid", alpha=0.5, steps=1000),
        "finished",
        240,
        43,
        1000,
        0.0,
    ),
    (
        "cross-en-de",
        RunConfig(name="cross-en-de", sampler="cross", train=("mlqa-r:de,en",), steps=1000),
        "crashed",
        180,
        30,
        700,
        0.0,
    ),
    (
        "hybrid-a0.3",
        RunConfig(name="hybrid-a0.3", sampler="hybrid", alpha=0.3, steps=1000),
        "running",
        75,
        75,
        400,
        0.0,
    ),
    ("hybrid-a0.7", RunConfig(name="hybrid-a0.7", sampler="hybrid", alpha=0.7, steps=1000), "queued", 70, 0, 0, 0.0),
)
# Ages are whole hours and minutes (the run list shows seconds only below an hour), so a
# capture taken within a minute of building the store reads the same every time.
DEMO_GRID = "reproduce-quick"
CRASH_ERROR = (
    "worker process 31337 on gpu-node-2 is gone without recording an exit; marked crashed "
    "(resume it with `hybtui runs resume {id}`)"
)


def kill_group(pgid: int) -> None:
    """SIGKILL a worker's process group, never this test's own: a run recorded as running by
    the test process itself (a slot holder) has the test's group, which is CI's too."""
    if pgid != os.getpgrp():
        os.killpg(pgid, signal.SIGKILL)


def demo_run_id(index: int, created_at: float) -> str:
    """``YYMMDD-HHMMSS-xxxx`` like the store's ids, from the creation time and a fixed suffix."""
    return time.strftime("%y%m%d-%H%M%S-", time.gmtime(created_at)) + f"{0xA1F0 + index:04x}"


def demo_loss(step: int, shift: float = 0.0) -> float:
    """A smooth, decaying, slightly wavy training loss."""
    return 0.35 - shift + 2.6 * math.exp(-step / 140) + 0.04 * math.sin(step / 9)


def demo_results(shift: float, seen: tuple[str, ...] = MLQA) -> list[ResultRow]:
    """Final xquad-r rows: mono and multi per language, cross per ordered pair, the
    multi rank distance, then the macro-averages (overall and per seen group) as
    evaluate.score_benchmark leaves them."""
    langs = LANGUAGES["xquad-r"]

    def label(*pair: str) -> str:
        flags = {lang in seen for lang in pair}
        return "seen" if flags == {True} else "unseen" if flags == {False} else "mixed"

    rows = []
    for x in langs:
        q = QUALITY[x] + shift
        for y in langs:
            if x == y:
                rows.append(ResultRow("xquad-r", "mono", x, y, "map", round(q, 4), label(x)))
            else:
                value = 0.8 * (q + QUALITY[y] + shift) / 2
                rows.append(ResultRow("xquad-r", "cross", x, y, "map", round(value, 4), label(x, y)))
        rows.append(ResultRow("xquad-r", "multi", x, "all", "map", round(0.72 * q, 4), label(x)))
        rows.append(ResultRow("xquad-r", "multi", x, "all", "rank_distance", round(40 * (1 - q), 2), label(x)))
    return rows + macro_averages(rows, by_seen=True)


def build_demo_store(path: str | Path, now: float = DEMO_NOW) -> dict[str, str]:
    """Fill the (new) store at ``path`` with DEMO_RUNS and a grid (DEMO_GRID) of three of
    them, as `hybtui reproduce` records one; returns {run or grid name: id}.

    Ids are fixed and every time is set relative to ``now`` (so the age and elapsed
    columns only depend on how long after ``now`` the app reads its clock)."""
    created = {name: now - 60 * minutes_ago for name, _, _, minutes_ago, *_ in DEMO_RUNS}
    grid_created = created["mono-baseline"] - 60
    # The ids read as if created at DEMO_NOW whatever ``now`` is: the same in every capture.
    ids = iter(
        [demo_run_id(i, created[name] - now + DEMO_NOW) for i, (name, *_) in enumerate(DEMO_RUNS)]
        + [demo_run_id(len(DEMO_RUNS), grid_created - now + DEMO_NOW)]
    )
    out: dict[str, str] = {}
    with Store(path) as store, mock.patch("hybtui.runs.database.random_id", lambda: next(ids)):
        for name, config, status, _, minutes_run, step, shift in DEMO_RUNS:
            run_id = out[name] = store.create_run(config)
            times = {"created_at": created[name]}
            if status != "queued":
                store.set_status(run_id, "running", pid=31337, host="gpu-node-2")
                store.add_metrics(run_id, [("loss", s, demo_loss(s, shift)) for s in range(5, step + 1, 5)])
                store.heartbeat(run_id, step=step)
                started = created[name] + 30
                times.update(started_at=started, heartbeat_at=started + 60 * minutes_run)
                log = [f"step {s:>4}/{config.steps}  loss {demo_loss(s, shift):.4f}" for s in range(100, step + 1, 100)]
                if status == "finished":
                    store.add_results(run_id, demo_results(shift), step=step, final=True)
                    store.set_status(run_id, "finished", exit_code=0)
                    times["ended_at"] = started + 60 * minutes_run
                    log += ["final evaluation: xquad-r (11 languages)", "training done"]
                elif status == "crashed":
                    store.set_status(run_id, "crashed", error=CRASH_ERROR.format(id=run_id), exit_code=-9)
                    times["ended_at"] = started + 60 * minutes_run
                launcher.log_path(store, run_id).write_text("\n".join(log) + "\n")
            store.db.table("runs").update(run_id, times)
        cells = [
            {"run_id": out[name], "sampler": sampler, "alpha": alpha, "seed": 42, "label": label}
            for name, sampler, alpha, label in (
                ("mono-baseline", "mono", None, "X-X-mono"),
                ("cross-en-de", "cross", None, "X-Y"),
                ("hybrid-a0.5", "hybrid", 0.5, "hybrid α=0.5"),
            )
        ]
        options = {
            "quick": True,
            "model": "me5-small",
            "alphas": [0.5],
            "seeds": [42],
            "lr": 3e-05,
            "steps": 1000,
            "batch_size": 100,
            "train": ["mlqa-r"],
            "eval": ["xquad-r"],
            "final_eval_max_queries": 0,
        }
        grid_id = out[DEMO_GRID] = store.create_grid(
            DEMO_GRID, {"options": options, "cells": cells, "expected_seconds": 9000}
        )
        store.db.table("grids").update(grid_id, {"created_at": grid_created})
    return out


# -- the app under Pilot -------------------------------------------------------------------

#: How often the app's tests re-read the store: short, so a change shows within a few frames.
REFRESH_S = 0.1
#: The longest ``settle`` waits for the app's thread workers (reads take milliseconds).
SETTLE_TIMEOUT_S = 60.0


async def settle(pilot: Pilot) -> None:
    """Let the app handle what is pending, wait for every thread worker now started (reads,
    the launcher, the queue), then let it handle what they posted back."""
    await pilot.pause()
    try:
        await asyncio.wait_for(pilot.app.workers.wait_for_complete(), SETTLE_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(
            f"the app's workers still busy after {SETTLE_TIMEOUT_S:.0f} s: {list(pilot.app.workers)}"
        ) from None
    await pilot.pause()


async def refreshed(pilot: Pilot) -> None:
    """A read of the current screen started after this call, and shown."""
    await settle(pilot)
    pilot.app.screen.reload()
    await settle(pilot)


async def wait_until(pilot: Pilot, condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds, naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} on {pilot.app.screen!r}")
        await pilot.pause()


async def new_run_form(pilot: Pilot) -> tuple[Screen, Static]:
    """Open the new-run form from the run list (``n``): the screen shown and its message line."""
    await pilot.press("n")
    screen = pilot.app.screen
    return screen, screen.query_one("#form-message", Static)


def drive(
    store_path: str | Path,
    scenario: Callable[[HybtuiApp, Pilot], Awaitable[Any]],
    size: tuple[int, int] = (100, 30),
    refresh_s: float = REFRESH_S,
) -> Any:
    """Open the app on ``store_path`` at ``size`` under Pilot, wait for its run list's first
    read, and run ``await scenario(app, pilot)`` (pytest-asyncio is not installed); returns
    what the scenario returns."""

    async def main() -> Any:
        app = HybtuiApp(store_path, refresh_s=refresh_s)
        async with app.run_test(size=size) as pilot:
            await wait_until(
                pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.is_mounted, "the run list"
            )
            await settle(pilot)  # its first read, started as it was mounted
            return await scenario(app, pilot)

    return asyncio.run(main())


#: (sampler, alpha, seed, mono mAP) of the small reproduction grid the report tests read.
GRID_CELLS = (
    ("baseline", None, 1, 0.4),
    ("mono", None, 1, 0.5),
    ("mono", None, 2, 0.7),
    ("hybrid", 0.5, 1, 0.8),
    ("hybrid", 0.5, 2, 0.6),
)


def record_grid(store: Store, per_language: bool) -> tuple[str, list[dict]]:
    """GRID_CELLS as `hybtui reproduce` records a grid (seeds 1 and 2), then one run deleted (it
    drops out of the averages, visibly). Each run has Table 1 averages and, with
    ``per_language``, multi mAP for en (seen) and th (unseen). Returns (grid id, cells)."""
    cells = []
    for sampler, alpha, seed, mono in GRID_CELLS:
        run_id = store.create_run(RunConfig(steps=1))
        rows = [
            ResultRow("xquad-r", s, AVERAGE, AVERAGE if s != "multi" else POOL_ALL, "map", v, None)
            for s, v in {"mono": mono, "cross": mono / 2, "multi": mono / 4}.items()
        ]
        if per_language:
            rows += [
                ResultRow("xquad-r", "multi", "en", POOL_ALL, "map", mono / 2, "seen"),
                ResultRow("xquad-r", "multi", "th", POOL_ALL, "map", mono / 8, "unseen"),
            ]
        store.add_results(run_id, rows, step=1, final=True)
        label = grid.Cell(sampler, alpha, seed).label
        cells.append({"run_id": run_id, "sampler": sampler, "alpha": alpha, "seed": seed, "label": label})
    options = {
        "quick": True,
        "model": "m",
        "alphas": [0.5],
        "seeds": [1, 2],
        "lr": 3e-5,
        "steps": 1,
        "batch_size": 2,
        "train": ["mlqa-r"],
        "eval": ["xquad-r"],
        "final_eval_max_queries": 0,
    }
    grid_id = store.create_grid("g", {"options": options, "cells": cells})
    store.delete_run(cells[2]["run_id"])
    return grid_id, cells


# -- tmux -------------------------------------------------------------------------------


class Tmux:
    """One detached tmux session on its own server (``-L``), so nothing touches the user's
    tmux; ``close`` kills the server. The command's exit status is written to ``rc_file``."""

    def __init__(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        size: tuple[int, int] = (100, 30),
        rc_file: Path | None = None,
    ) -> None:
        self.socket = f"hybtui-{uuid.uuid4().hex[:8]}"
        self.name = "hybtui"
        self.rc_file = rc_file or cwd / "tmux-command.rc"
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(self.rc_file))}"
        env_flags = [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]
        self._tmux(
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            str(size[0]),
            "-y",
            str(size[1]),
            "-c",
            str(cwd),
            *env_flags,
            shell,
        )
        # Where tmux puts a -L socket; it leaves the file behind when its server is killed.
        self._socket_path = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / self.socket

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # An explicit environment: the inherited C one may hold COLUMNS=80 and LINES=24 that
        # readline set without os.environ knowing (under pytest it does), and the server
        # started here would hand them to the app, which would then draw at 80x24.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=30, env=env
        )

    def send(self, *keys: str, gap_s: float = 0.15) -> None:
        """tmux key names (``Tab``, ``Enter``, ``C-s``, ``Space``, ``Escape``, ``Down``), one at
        a time with a pause after each: Textual runs bindings (tab, ctrl+u) in the app's task
        but hands printable keys to the focused widget's queue, so keys sent in one burst can
        take effect out of order."""
        for key in keys:
            self._tmux("send-keys", "-t", self.name, key)
            time.sleep(gap_s)

    def type(self, text: str, gap_s: float = 0.15) -> None:
        """Literal text (then a pause, as ``send``)."""
        self._tmux("send-keys", "-t", self.name, "-l", text)
        time.sleep(gap_s)

    def capture(self, escapes: bool = False) -> str:
        """The pane's text (with ``escapes``: with its colours and styles, which show what is
        focused, highlighted or selected)."""
        proc = self._tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.name, check=False)
        return proc.stdout if proc.returncode == 0 else f"(no pane: {proc.stderr.strip()})"

    def cursor(self) -> tuple[int, int]:
        """The terminal cursor's (column, row): Textual keeps it, hidden, in the focused Input."""
        out = self._tmux("display-message", "-p", "-t", self.name, "#{cursor_x} #{cursor_y}", check=False).stdout
        x, _, y = out.strip().partition(" ")
        return (int(x), int(y)) if x.isdigit() and y.isdigit() else (-1, -1)

    def alive(self) -> bool:
        return self._tmux("has-session", "-t", self.name, check=False).returncode == 0

    def wait_for(self, condition: Callable[[str], object], timeout: float, what: str, step: float = 0.25) -> str:
        """Poll the pane until ``condition(text)`` holds; returns that capture."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.capture()
            if condition(text):
                return text
            time.sleep(step)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last capture:\n{text}")

    def settle(self, quiet_s: float = 0.6, timeout: float = 10, escapes: bool = False) -> str:
        """Wait until the pane stops changing for ``quiet_s`` seconds; returns it."""
        deadline = time.monotonic() + timeout
        last, since = self.capture(escapes), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            text = self.capture(escapes)
            if text != last:
                last, since = text, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return last

    def close(self) -> None:
        """Kill the server (and so the app, if still running) and remove its socket."""
        self._tmux("kill-server", check=False)
        self._socket_path.unlink(missing_ok=True)


@contextmanager
def tmux_session(*args, **kwargs) -> Iterator[Tmux]:
    session = Tmux(*args, **kwargs)
    try:
        yield session
    finally:
        session.close()
