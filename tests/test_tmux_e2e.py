"""End to end in a real terminal: `python -m hybtui --store STORE` in a detached tmux
session (100x30), driven only with keys: the new-run form is filled for a 3-step run of
the tiny model and launched with ctrl+s, a real detached worker trains and evaluates it,
and the pane must come to show the run finished with its final mAP figures; then `q`
must end the app with exit status 0.

Skipped where tmux is not installed (`apt-get install -y tmux`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from tui_fixtures import kill_group, tmux_session

from hybtui.modeling import encoder as models
from hybtui.runs.store import Store
from hybtui.tui.screens.new_run_fields import NUMBERS, PRECISION_AFTER

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")

SIZE = (100, 30)
#: The whole run: form check, worker start (torch import), 3 steps, evaluation on xquad-r en.
RUN_TIMEOUT_S = 180
NAME = "e2e-tiny"
#: Steps of the launched run, evaluated every EVAL_EVERY of them (then finally).
STEPS, EVAL_EVERY = 6, 2
#: A language row of the detail screen's final results: lang, seen, then mAP figures.
EN_ROW = re.compile(r"^\s*en\s+seen\s+(\d\.\d{3})\b.*?(\d\.\d{3})", re.M)
#: The end of a form line: spaces, maybe the form's scrollbar.
END = r"\s*[▁▂▃▄▅▆▇█]*\s*$"
AVG_ROW = re.compile(r"^\s*avg\s+(\d\.\d{3})", re.M)


def quiet_form(tmux, expect: str, timeout: float = 60) -> str:
    """Wait until the form's check has run on the form as it now stands and the pane is still.

    A change restarts the check after a short delay, with the last message still shown: a
    ``ready`` counts once the pane has been still for 0.8 s (longer than a focused Input's
    cursor blink) and no check is running."""
    deadline = time.monotonic() + timeout
    while True:
        text = tmux.settle(quiet_s=0.8, timeout=timeout)
        if expect in text and "checking" not in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the form never showed '{expect}' for {timeout} s; last capture:\n{text}")


# Keys reach the widget that is focused when the app reads them, and a widget's bindings run
# only after the key has bubbled up to the app; so a key sent before the previous one has
# taken effect can land in the wrong widget or overtake it (a SelectionList toggles whatever
# is highlighted when its toggle message is handled). Under load (the form's check loads the
# training data in a thread) fixed pauses are not enough: every key below waits for its effect.


def form_part(tmux) -> str:
    """The form with its colours (focus, highlight, selection), without the check's message."""
    lines = tmux.capture(escapes=True).splitlines()
    end = next((i for i, line in enumerate(lines) if "──────────" in line), len(lines))
    return "\n".join(lines[:end])


def press_seen(tmux, key: str, what: str, timeout: float = 10) -> None:
    """Send ``key`` and wait until the form shows its effect."""
    before = form_part(tmux)
    tmux.send(key, gap_s=0)
    deadline = time.monotonic() + timeout
    while form_part(tmux) == before:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{key} ({what}) had no visible effect in {timeout} s; last capture:\n{tmux.capture()}"
            )
        time.sleep(0.05)


def row_of(text: str, label: str) -> int:
    return next((i for i, line in enumerate(text.splitlines()) if re.match(rf" {re.escape(label)}\s", line)), -2)


def focus_order() -> list[str]:
    """The form's widgets in Tab order (the order the form composes them in), so that the test
    counts Tabs from the form's own list of fields, whatever fields it gains."""
    fields = []
    for field, _, _ in NUMBERS:
        fields += [field, "precision"] if field == PRECISION_AFTER else [field]
    top = ["name", "model", "model-path", "sampler", "train-bench", "train-langs", "eval-bench", "eval-langs"]
    return [*top, *fields, "device", "gpus", "launch"]


def tabs(start: str, end: str) -> int:
    """Tabs from the widget ``start`` to ``end``."""
    order = focus_order()
    return order.index(end) - order.index(start)


def focus_input(tmux, field: str, start: str) -> None:
    """Tab (or shift+Tab, back) from ``start`` to ``field``'s Input and wait until it holds the
    (hidden) cursor. An Input places the cursor as it takes the focus or its cursor moves, so a
    form still scrolling it into view (or a message line growing below) leaves the cursor behind:
    Home then End (harmless in an Input) place it again where the Input now is."""
    label = next(label for name, label, _ in NUMBERS if name == field)
    count = tabs(start, field)
    tmux.send(*["Tab" if count > 0 else "BTab"] * abs(count), gap_s=0.1)
    deadline = time.monotonic() + 10
    while tmux.cursor()[1] != row_of(tmux.capture(), label):
        if time.monotonic() > deadline:
            raise AssertionError(f"the focus never reached the {label} input; last capture:\n{tmux.capture()}")
        tmux.send("Home", "End", gap_s=0.2)


def set_input(tmux, label: str, text: str) -> None:
    """Replace the focused Input's text: to its end, delete all left of the cursor, type; each
    step waits for its effect (a typed key is handled before a binding sent just ahead of it)."""
    tmux.send("End", "C-u", gap_s=0.1)
    tmux.wait_for(lambda s: re.search(rf"^ {re.escape(label)}{END}", s, re.M), 10, f"{label} cleared")
    tmux.type(text, gap_s=0)
    tmux.wait_for(
        lambda s: re.search(rf"^ {re.escape(label)}\s+{re.escape(text)}{END}", s, re.M), 10, f"{label} to read {text}"
    )


def focus_other(tmux, tabs: int) -> None:
    """Tab ``tabs`` times onto a widget that is not an Input and wait until the form is still
    (an Input that still had the focus would blink)."""
    tmux.send(*["Tab"] * tabs, gap_s=0.1)
    tmux.settle(quiet_s=0.8, escapes=True)


def keep_languages(tmux, languages: tuple[str, ...], keep: set[str]) -> None:
    """In the focused SelectionList (every language chosen), unchoose all but ``keep``."""
    tmux.send("Home", gap_s=0.1)  # the first language: already highlighted where the list just took the focus
    tmux.settle(quiet_s=0.8, escapes=True)
    for i, lang in enumerate(languages):
        if lang not in keep:
            press_seen(tmux, "Space", f"unchoose {lang}")
        if i + 1 < len(languages):
            press_seen(tmux, "Down", "highlight the next language")


def test_new_run_in_tmux_trains_to_finished_with_figures_and_quits(tmp_path, shared_data):
    from hybtui.data.lareqa import LANGUAGES

    models.prepare_tiny()  # into this session's HYBTUI_MODEL_CACHE, so the worker starts at once
    store_dir = tmp_path / "store"
    env = {
        "HYBTUI_DATA_DIR": str(shared_data),
        "HF_HUB_OFFLINE": "1",
        "HYBTUI_MODEL_CACHE": os.environ["HYBTUI_MODEL_CACHE"],
        "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
        "TOKENIZERS_PARALLELISM": "false",
        "TERM": "xterm-256color",
    }
    command = [sys.executable, "-m", "hybtui", "--store", str(store_dir)]
    started = time.monotonic()
    try:
        with tmux_session(command, tmp_path, env, size=SIZE) as tmux:
            tmux.wait_for(lambda s: "filter by name" in s, 60, "the run list")
            tmux.send("n")
            tmux.wait_for(lambda s: "ready:" in s, 120, "the new-run form, checked")
            quiet_form(tmux, "ready: me5-small")
            tmux.wait_for(lambda s: tmux.cursor()[1] == row_of(s, "name"), 10, "the focus on the name")
            tmux.type(NAME)
            tmux.wait_for(lambda s: re.search(rf"^ name\s+{NAME}{END}", s, re.M), 10, "the name typed")
            focus_other(tmux, 1)
            tmux.send("Enter")  # the model select: open its list
            tmux.wait_for(lambda s: "xlm-roberta-base" in s, 10, "the model list open")
            tmux.send("Down", "Enter")  # me5-small is highlighted, tiny next
            tmux.wait_for(lambda s: re.search(r"model\s+tiny\b", s), 10, "the tiny model chosen")
            quiet_form(tmux, "ready: tiny")
            focus_other(tmux, tabs("model", "train-langs"))
            keep_languages(tmux, LANGUAGES["mlqa-r"], {"en", "de", "es"})
            focus_other(tmux, tabs("train-langs", "eval-langs"))
            keep_languages(tmux, LANGUAGES["xquad-r"], {"en"})
            focus_input(tmux, "warmup_steps", "eval-langs")  # first: a warmup past the steps is warned of
            set_input(tmux, "warmup steps", "1")
            focus_input(tmux, "steps", "warmup_steps")
            set_input(tmux, "steps", str(STEPS))
            focus_input(tmux, "batch_size", "steps")
            set_input(tmux, "batch size", "8")
            focus_input(tmux, "max_length", "batch_size")
            set_input(tmux, "max length", "32")
            focus_input(tmux, "eval_every", "max_length")
            set_input(tmux, "eval every", str(EVAL_EVERY))
            quiet_form(tmux, f"ready: tiny, hybrid, {STEPS} steps")
            tmux.send("C-s")
            tmux.wait_for(lambda s: "— new run" not in s, 30, "ctrl+s to launch the run and open its detail")
            tmux.send("2")  # the run's page: its evaluations over steps, drawn as they come
            tmux.wait_for(
                lambda s: "mono mAP" in s and "multi rank dist." in s, RUN_TIMEOUT_S, "the evaluation curves drawn"
            )
            tmux.wait_for(lambda s: re.search(r"^\s*finished\b", s, re.M), RUN_TIMEOUT_S, "the run finished")
            tmux.send("3")  # its final figures per language

            try:
                finished = tmux.wait_for(
                    lambda s: re.search(r"^\s*finished\b", s, re.M) and EN_ROW.search(s) and AVG_ROW.search(s),
                    RUN_TIMEOUT_S,
                    "the run's detail to show it finished with its en and avg mAP",
                )
            except AssertionError as exc:  # what the store holds tells a slow read from a lost record
                raise AssertionError(f"{exc}\n--- the store meanwhile ---\n{store_state(store_dir)}") from None
            mono, multi = (float(v) for v in EN_ROW.search(finished).groups())
            assert 0.0 < mono <= 1.0 and 0.0 < multi <= 1.0, finished
            assert NAME in finished

            with Store(store_dir) as store:
                (run,) = store.list_runs()
                assert run["status"] == "finished" and run["step"] == STEPS, run
                assert run["name"] == NAME
                config = run["config"]
                assert (config["model"], config["steps"], config["batch_size"], config["max_length"]) == (
                    "tiny",
                    STEPS,
                    8,
                    32,
                )
                assert config["eval_every"] == EVAL_EVERY
                periodic = {r["step"] for r in store.results(run["id"], final_only=False) if not r["final"]}
                assert periodic == set(range(EVAL_EVERY, STEPS, EVAL_EVERY)), periodic
                assert config["warmup_steps"] == 1
                assert config["train"] == ["mlqa-r:de,en,es"] and config["eval"] == ["xquad-r:en"], config
                stored_mono = next(
                    r["value"]
                    for r in store.results(run["id"])
                    if (r["setting"], r["query_lang"], r["metric"]) == ("mono", "en", "map")
                )
            assert f"{stored_mono:.3f}" == f"{mono:.3f}"

            tmux.send("5")  # its log: the worker's lines with the store's events among them
            tmux.wait_for(
                lambda s: f"step {STEPS}: final evaluation done" in s and "finished" in s,
                15,
                "the log tab to show the final evaluation and the run's end",
            )

            tmux.send("Escape")  # back to the run list: the run's line carries its headline figures
            tmux.wait_for(
                lambda s: re.search(rf"{NAME}.*finished\s+{mono:.3f}", s),
                15,
                "the run list to show the finished run and its mono mAP",
            )

            tmux.send("q")
            tmux.wait_for(lambda s: not tmux.alive(), 15, "the app to exit on q", step=0.2)
            assert tmux.rc_file.read_text().strip() == "0", "the app did not exit cleanly"
    finally:  # a failed test must not leave its real worker training
        if (store_dir / "hybtui.db").exists():
            with Store(store_dir) as store:
                for r in store.list_runs(status="running"):
                    with contextlib.suppress(ProcessLookupError, TypeError):
                        kill_group(r["pgid"] or r["pid"])
        print(f"tmux e2e took {time.monotonic() - started:.1f} s")


def store_state(store_dir: Path) -> str:
    """Each run's status and step, its rows per table, its events and its worker log's tail."""
    lines = []
    with contextlib.closing(sqlite3.connect(f"file:{store_dir / 'hybtui.db'}?mode=ro", uri=True)) as conn:
        for run_id, status, step in conn.execute("SELECT id, status, step FROM runs"):
            counts = {
                t: conn.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0]
                for t in ("metrics", "results", "events")
            }
            events = [m for (m,) in conn.execute("SELECT message FROM events WHERE run_id = ? ORDER BY id", [run_id])]
            log = store_dir / "runs" / run_id / "worker.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else ["(no worker.log)"]
            lines += [f"{run_id} {status} step {step} {counts}", *events, *tail]
    return "\n".join(lines)
