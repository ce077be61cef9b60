"""Untrusted text is inert everywhere: run names with Rich markup or a table's separator are
accepted and shown literally by every command, every export format and the app (in a real
terminal, through tmux); names with control characters are refused on input, and a store
that already holds such names (written by something else) is shown safely: no raw control
character on stdout, no split table row, an app that stays up with its header intact."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY
from rich.console import Console
from tui_fixtures import tmux_session

from hybtui import inert
from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.results import ResultRow
from hybtui.runs import launcher
from hybtui.runs.store import Store

#: Accepted on input, shown as typed.
SAFE_NAMES = ("[/]", "[bold red]x[/]", "a|b")
#: Refused on input; a store may still hold them: (stored name, how it is shown).
HOSTILE_NAMES = (
    ("e\x1b[2Jx", "e\\x1b[2Jx"),
    ("t\x1b]0;p\x07", "t\\x1b]0;p\\x07"),
    ("nl\nrow", "nl\\nrow"),
    ("c1\x9b31m", "c1\\x9b31m"),
)
EVENT = "event [bold]y[/] \x1b[31mred\x1b[0m"
ERROR = "RuntimeError: [red]boom[/] \x1b]0;title\x07"
LOG = "log line [/] [bold red]z[/]\n\x1b[2Jcleared?\ttab\r\nlast\n"
#: Control characters that must never reach stdout raw (C0 but newline, DEL, C1).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def hybtui(*args: str) -> subprocess.CompletedProcess:
    return hybtui_all([args])[0]


def hybtui_all(commands: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess]:
    """Run the commands at once (each is a fresh interpreter that may import torch)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hybtui", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "250"},
        )
        for args in commands
    ]
    done = []
    for args, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def text_of(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert not RAW_CONTROL.search(out), repr(RAW_CONTROL.search(out))
    return out


def dump(store: Path) -> list[str]:
    with sqlite3.connect(store / "hybtui.db") as conn:
        return list(conn.iterdump())


# -- the helpers ------------------------------------------------------------------------


def test_visible_escapes_every_control_character_and_keeps_the_rest():
    assert inert.visible("a\x1b[2Jb\x00\x7f\x9b\u202e\u2028ok é 中") == "a\\x1b[2Jb\\x00\\x7f\\x9b\\u202e\\u2028ok é 中"
    assert inert.visible("a\nb\tc\r") == "a\\nb\\tc\\r"
    assert inert.visible("a\nb\x1b", keep="\n") == "a\nb\\x1b"
    assert inert.lines("one\r\ntwo\rthree\x1b[0m\tx") == "one\ntwo\nthree\\x1b[0m    x"  # tab stops as shown
    assert all(not inert.has_unsafe(name) for name in SAFE_NAMES)
    assert all(inert.has_unsafe(name) for name, _ in HOSTILE_NAMES)


@pytest.mark.parametrize("name", [*SAFE_NAMES, "back\\slash\\", "[link=x]y[/link]", ":smile:"])
def test_text_shows_names_literally(name):
    console = Console(width=100, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(inert.text(name))
    assert captured.get() == f"{name}\n"


def test_markdown_cells_cannot_end_a_cell_or_a_row():
    assert inert.md_cell("a|b") == "a\\|b"
    assert inert.md_cell("a\\|b") == "a\\\\\\|b"  # the backslash is escaped, then the pipe: no cell ends
    assert inert.md_cell("nl\nrow\r\nx") == "nl<br>row<br>x"
    assert inert.md_cell("e\x1b[2J") == "e\\\\x1b[2J"  # rendered: e\x1b[2J


def test_csv_fields_keep_line_breaks_quoted_and_json_escapes_del():
    out = io.StringIO()
    csv.writer(out).writerow([inert.csv_field(v) for v in ("nl\nrow", "e\x1bx", 1.5, None)])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["nl\nrow", "e\\x1bx", "1.5", ""]]
    assert inert.dumps("d\x7fe\x1b") == '"d\\u007fe\\u001b"' and json.loads(inert.dumps("d\x7f")) == "d\x7f"


def test_names_with_control_characters_are_refused_by_the_configuration():
    for name, shown in HOSTILE_NAMES:
        with pytest.raises(HybtuiError, match="--name must not hold control characters") as error:
            RunConfig(name=name)
        assert shown in str(error.value) and not RAW_CONTROL.search(str(error.value))
    for name in SAFE_NAMES:
        assert RunConfig(name=name).name == name


# -- a store holding such names -----------------------------------------------------------


def hostile_store(path: Path) -> dict[str, str]:
    """Runs named SAFE_NAMES (through the store's API) and HOSTILE_NAMES (written directly,
    as an older version or another program could have), each with final results; the newest
    run also carries an error, an event and a worker log with markup and ESC sequences; a
    grid whose name holds markup, a pipe and ESC. Returns {name: run id}."""
    rows = [
        ResultRow("xquad-r", setting, lang, lang if setting == "mono" else "all", "map", value, None)
        for setting, value in (("mono", 0.8), ("multi", 0.6))
        for lang in ("en", "avg")
    ]
    ids = {}
    with Store(path) as store:
        for name in (*SAFE_NAMES, *(name for name, _ in HOSTILE_NAMES)):
            run_id = ids[name] = store.create_run(RunConfig(model="tiny", name="placeholder", steps=3))
            # finished: a queued run would be started by the first command that opens the store
            store.db.execute(
                "UPDATE runs SET name = ?, status = 'finished', created_at = created_at + ? WHERE id = ?",
                [name, len(ids), run_id],
            )
            store.add_results(run_id, rows, step=3, final=True)
        newest = ids[HOSTILE_NAMES[0][0]]
        store.db.execute("UPDATE runs SET created_at = created_at + 100, error = ? WHERE id = ?", [ERROR, newest])
        store.add_event(newest, "error", EVENT)
        launcher.log_path(store, newest).write_text(LOG)
        cells = [
            {"run_id": run_id, "sampler": "mono", "alpha": None, "seed": 42, "label": f"label {name}"}
            for name, run_id in ids.items()
        ]
        options = {
            "quick": True,
            "model": "tiny",
            "alphas": [0.5],
            "seeds": [42],
            "lr": 3e-05,
            "steps": 3,
            "batch_size": 8,
            "train": ["mlqa-r"],
            "eval": ["xquad-r"],
            "final_eval_max_queries": 0,
        }
        ids["grid"] = store.create_grid("grid [/] a|b \x1b[2J", {"options": options, "cells": cells})
    return ids


def shown(name: str) -> str:
    return dict(HOSTILE_NAMES).get(name, name)


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "store"
    return path, hostile_store(path)


def test_runs_ls_prints_every_name_literally(hostile):
    path, ids = hostile
    runs = {name: run_id for name, run_id in ids.items() if name != "grid"}
    table, listing = hybtui_all([("runs", "ls", "--store", str(path)), ("runs", "ls", "--json", "--store", str(path))])
    for name, run_id in runs.items():  # one table line per run, holding its id and its name as shown
        assert re.search(rf"{run_id}\s*│\s*{re.escape(shown(name))}\s*│", text_of(table)), (name, text_of(table))
    assert {run["name"] for run in json.loads(text_of(listing))} == set(runs)


def assert_shown(path: Path, ids: dict[str, str], names: list[str]) -> None:
    """`runs show` of each run starts with its id and its name as shown; the run with an error
    and an event shows both literally."""
    shows = hybtui_all([("runs", "show", ids[name], "--store", str(path)) for name in names])
    for name, proc in zip(names, shows):
        out = text_of(proc)
        assert out.startswith(f"{ids[name]} {shown(name)} · finished")
        if name == HOSTILE_NAMES[0][0]:
            assert inert.visible(ERROR) in out and inert.visible(EVENT) in out


def test_runs_show_prints_names_errors_and_events_literally(hostile):
    path, ids = hostile
    assert_shown(path, ids, ["[bold red]x[/]", HOSTILE_NAMES[0][0]])
    out = text_of(hybtui("runs", "show", ids["[/]"], "--json", "--store", str(path)))
    assert json.loads(out)["run"]["name"] == "[/]"


@pytest.mark.slow
def test_runs_show_prints_every_name_literally(hostile):
    path, ids = hostile
    assert_shown(path, ids, [name for name in ids if name != "grid"])


def test_compare_prints_names_literally(hostile):
    path, ids = hostile
    names = [*SAFE_NAMES, HOSTILE_NAMES[0][0], HOSTILE_NAMES[2][0]]
    out = text_of(hybtui("compare", *(ids[name] for name in names), "--store", str(path)))
    name_row = next(line for line in out.splitlines() if line.startswith("│ name "))
    assert [cell.strip() for cell in name_row.strip("│").split("│")[1:]] == [shown(name) for name in names]


def test_every_export_format_keeps_names_exact_and_rows_whole(hostile):
    path, ids = hostile
    runs = {name: run_id for name, run_id in ids.items() if name != "grid"}
    rows = list(csv.DictReader(io.StringIO(text_of(hybtui("runs", "export", "--format", "csv", "--store", str(path))))))
    assert {row["run_name"] for row in rows} == {inert.visible(name, keep="\n") for name in runs}
    assert {name for name in runs if "\n" not in name and "\x1b" not in name and "\x9b" not in name} <= {
        row["run_name"] for row in rows
    }
    exported = json.loads(text_of(hybtui("runs", "export", "--format", "json", "--store", str(path))))
    assert {item["run"]["name"] for item in exported} == set(runs)
    markdown = text_of(hybtui("runs", "export", "--format", "md", "--store", str(path))).splitlines()
    assert len(markdown) == 2 + len(runs)  # header, rule, one line per run: none is split
    for line in markdown[2:]:
        cells = re.split(r"(?<!\\)\|", line)[1:-1]  # a pipe escaped with a backslash does not end a cell
        assert len(cells) == 11, line
        run_id, name = cells[0].strip(), cells[1].strip()
        original = next(n for n, i in runs.items() if i == run_id)
        assert name == inert.md_cell(original)
    assert any(line.startswith(f"| {runs['a|b']} | a\\|b | ") for line in markdown)


def test_grids_ls_and_report_show_the_grid_name_literally(hostile):
    path, ids = hostile
    listing = text_of(hybtui("grids", "ls", "--store", str(path)))
    assert "grid [/] a|b \\x1b[2J" in listing
    report = text_of(hybtui("grids", "report", ids["grid"], "--store", str(path)))
    assert "grid [/] a|b \\x1b[2J" in report.replace("\\\\", "\\")
    written = (path / "grids" / ids["grid"] / "report.md").read_text()
    assert written.startswith("# grid [/] a\\|b \\\\x1b[2J — grid ")
    assert "| label \\[/] |" not in written and "| label [/] |" in written


def test_train_accepts_markup_names_and_refuses_control_characters(tmp_path, shared_data):
    path = tmp_path / "store"
    with Store(path) as store:  # a run of this process fills the one slot: queued runs stay queued
        store.create_run(RunConfig(model="tiny", name="slot"), status="running")
    before = dump(path)
    config = tmp_path / "escape.toml"
    config.write_text('name = "toml\\u001b[2Jname"\n')
    common = ("--store", str(path), "--data-dir", str(shared_data), "--detach", *TINY)
    *refused, from_file = hybtui_all(
        [("train", *common, f"--name={name}") for name, _ in HOSTILE_NAMES]
        + [("train", *common, "--config", str(config))]
    )
    for proc in refused:
        err = proc.stderr.decode()
        assert proc.returncode == 2 and "--name must not hold control characters" in err, err
        assert err.count("\n") == 1 and not RAW_CONTROL.search(err)
    assert from_file.returncode == 2 and f"{config}: invalid run configuration: --name" in from_file.stderr.decode()
    assert dump(path) == before
    proc = hybtui("train", *common, "--name", "[bold red]x[/]")  # the others: RunConfig, above; the slow test
    assert proc.returncode == 0, proc.stderr.decode()
    with Store(path) as store:
        assert [run["name"] for run in store.list_runs(status="queued")] == ["[bold red]x[/]"]


@pytest.mark.slow
def test_train_accepts_every_markup_name(tmp_path, shared_data):
    path = tmp_path / "store"
    with Store(path) as store:
        store.create_run(RunConfig(model="tiny", name="slot"), status="running")
    common = ("--store", str(path), "--data-dir", str(shared_data), "--detach", *TINY)
    for proc in hybtui_all([("train", *common, "--name", name) for name in SAFE_NAMES]):
        assert proc.returncode == 0, proc.stderr.decode()
    with Store(path) as store:
        assert sorted(run["name"] for run in store.list_runs(status="queued")) == sorted(SAFE_NAMES)


def test_store_refuses_a_name_with_control_characters(tmp_path):
    with Store(tmp_path / "store") as store:
        with pytest.raises(HybtuiError, match="--name must not hold control characters"):
            store.create_run(RunConfig(model="tiny"), name="x\x1b[2J")
        assert store.list_runs() == []


# -- the app, in a real terminal --------------------------------------------------------


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_the_app_in_tmux_shows_names_errors_and_log_literally(hostile, tmp_path):
    path, ids = hostile
    env = {"TERM": "xterm-256color", "HF_HUB_OFFLINE": "1"}
    with tmux_session([sys.executable, "-m", "hybtui", "--store", str(path)], tmp_path, env, size=(160, 30)) as tmux:
        listing = tmux.wait_for(
            lambda s: all(shown(n) in s for n in ids if n != "grid"), 60, "every name shown literally in the run list"
        )
        lines = listing.splitlines()
        assert lines[0].strip().startswith("⭘") and "hybtui" in lines[0], lines[0]  # the header is intact
        for name in ids:
            if name != "grid":  # each run on one line, its name between its id and its model
                assert any(ids[name] in line and shown(name) in line and "tiny" in line for line in lines), name
        tmux.send("Enter")  # the newest run: the one with an error, an event and a log
        detail = tmux.wait_for(lambda s: inert.visible(ERROR) in s, 30, "the detail screen with the error")
        assert "hybtui" in detail.splitlines()[0] and shown(HOSTILE_NAMES[0][0]) in detail
        tmux.send("5")  # the log tab
        log = tmux.wait_for(lambda s: "cleared?" in s, 30, "the log tab")
        assert "log line [/] [bold red]z[/]" in log and re.search(r"\\x1b\[2Jcleared\? +tab", log) and "last" in log
        assert "hybtui" in log.splitlines()[0]
        tmux.send("Escape")
        tmux.wait_for(lambda s: "filter by name" in s, 15, "the run list again")
        tmux.send("q")
        tmux.wait_for(lambda s: not tmux.alive(), 15, "the app to exit on q", step=0.2)
        assert tmux.rc_file.read_text().strip() == "0", "the app did not exit cleanly"
