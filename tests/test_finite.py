"""Every float option is finite: NaN and ±inf are refused wherever a configuration enters
(CLI options, TOML and JSON files, the app's form) with one line naming the option, and
nothing reaches the store. The store writes only JSON that SQLite's JSON functions read,
and one row that is not (written by something else) hides no other run."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from cli_helpers import TINY
from textual.widgets import Button, Input
from tui_fixtures import drive, new_run_form, wait_until

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.results import ResultRow
from hybtui.runs.records import UNREADABLE
from hybtui.runs.store import Store
from hybtui.tui.screens.runs import RunsScreen
from hybtui.tui.widgets.runs_table import RunsTable

#: The float options of `hybtui train` and the float fields a configuration file may set.
CLI_FLOATS = ("alpha", "lr", "weight-decay", "temperature", "validation-fraction")
FILE_FLOATS = tuple(f.name for f in fields(RunConfig) if f.type == "float")
NOT_FINITE = ("nan", "inf", "-inf")


def hybtui(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hybtui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def finished(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Started together (each is a fresh interpreter), waited for in order."""
    return [(proc.returncode, out, err) for proc in procs for out, err in [proc.communicate(timeout=120)]]


def dump(store: Path) -> tuple[list[str], list[str]]:
    """The store's logical contents (every row, as SQL) and its files."""
    with sqlite3.connect(store / "hybtui.db") as conn:
        rows = list(conn.iterdump())
    return rows, sorted(str(p.relative_to(store)) for p in store.rglob("*") if not p.name.startswith("hybtui.db"))


@pytest.fixture
def store(tmp_path) -> Path:
    """A store holding one run, so "unchanged" means more than empty."""
    path = tmp_path / "store"
    with Store(path) as db:
        db.create_run(RunConfig(model="tiny", name="existing"))
    return path


def assert_refused(outcome: tuple[int, str, str], options: list[str]) -> None:
    code, out, err = outcome
    assert code == 2, err
    assert out == "" and err.startswith("hybtui: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for option in options:
        assert f"--{option} must be a finite number" in err, (option, err)


def test_each_float_option_of_train_refuses_nan_and_infinities_and_writes_nothing(store, shared_data):
    before = dump(store)
    cases = [(option, value) for option in CLI_FLOATS for value in NOT_FINITE]
    outcomes = finished(
        [
            hybtui(
                "train", "--store", str(store), "--data-dir", str(shared_data), "--detach", *TINY, f"--{option}", value
            )
            for option, value in cases
        ]
    )
    for (option, value), outcome in zip(cases, outcomes):
        assert_refused(outcome, [option])
        assert f"(got {value})" in outcome[2]
    assert dump(store) == before


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_config_file_with_nan_or_infinity_names_each_option_and_the_file(store, shared_data, tmp_path, suffix):
    """Each file sets every float field to the same non-finite value: the one line names
    the file and every one of them (validation reports all problems at once)."""
    before = dump(store)
    files = []
    for value in NOT_FINITE:
        path = tmp_path / f"{value}{suffix}"
        if suffix == ".toml":  # nan, inf and -inf are TOML floats
            path.write_text("".join(f"{name} = {value}\n" for name in FILE_FLOATS))
        else:  # Python's JSON reader takes NaN and Infinity, as other tools write them
            path.write_text(json.dumps({name: float(value) for name in FILE_FLOATS}))
        files.append(path)
    outcomes = finished(
        [
            hybtui("train", "--store", str(store), "--data-dir", str(shared_data), "--detach", "--config", str(path))
            for path in files
        ]
    )
    for path, outcome in zip(files, outcomes):
        assert_refused(outcome, [name.replace("_", "-") for name in FILE_FLOATS])
        assert outcome[2].startswith(f"hybtui: error: {path}: ")
    assert dump(store) == before


def test_reproduce_and_sample_refuse_non_finite_floats(store, shared_data):
    before = dump(store)
    quick = ("reproduce", "--quick", "--model", "tiny", "--store", str(store), "--data-dir", str(shared_data))
    outcomes = finished(
        [
            hybtui(*quick, "--lr", "nan"),
            hybtui(*quick, "--alpha", "0.5", "--alpha", "inf"),
            hybtui("sample", "--data-dir", str(shared_data), "--train", "mlqa-r:en,de", "--alpha", "-inf"),
        ]
    )
    for outcome, option in zip(outcomes, ("lr", "alpha", "alpha")):
        assert_refused(outcome, [option])
    assert dump(store) == before


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "0.1", True])
def test_run_config_checks_every_float_field(value):
    for name in FILE_FLOATS:
        with pytest.raises(HybtuiError, match=f"--{name.replace('_', '-')} must be a (finite )?number"):
            RunConfig(**{name: value})


def test_int_fields_take_integers_only():
    for bad in (1.5, math.nan, "3", True):
        with pytest.raises(HybtuiError, match="--steps must be an integer"):
            RunConfig(steps=bad)


def test_config_json_is_strict_and_sqlite_reads_it(tmp_path):
    config = RunConfig(model="tiny", lr=1e-300, alpha=0.0)
    assert "NaN" not in config.to_json() and json.loads(config.to_json())["lr"] == 1e-300
    with Store(tmp_path / "store") as store:
        run_id = store.create_run(config)
        assert (
            store.db.execute("SELECT json_extract(config, '$.lr') FROM runs WHERE id = ?", [run_id]).fetchone()[0]
            == 1e-300
        )
        with pytest.raises(HybtuiError, match="grid g: cannot store a value that is not a finite number"):
            store.create_grid("g", {"expected_seconds": math.inf})
        assert store.list_grids() == []


def bad_rows_store(path: Path) -> dict[str, str]:
    """Three good runs and two whose configuration a foreign writer broke: NaN in it, and
    text that is not JSON at all; {name: id}."""
    ids = {}
    with Store(path) as store:
        for name in ("good-1", "nan-config", "good-2", "not-json", "good-3"):
            ids[name] = store.create_run(RunConfig(model="tiny", sampler="mono", name=name))
        store.add_results(
            ids["good-2"], [ResultRow("xquad-r", "mono", "avg", "avg", "map", 0.5, None)], step=1, final=True
        )
    with sqlite3.connect(path / "hybtui.db") as conn:  # as another program would write them
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", ['{"model": "tiny", "lr": NaN}', ids["nan-config"]])
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", ["{truncated", ids["not-json"]])
    return ids


def test_an_unreadable_config_row_hides_no_other_run(tmp_path):
    path = tmp_path / "store"
    ids = bad_rows_store(path)
    with Store(path) as store:
        overview = {run["name"]: run for run in store.run_overview()}
        assert set(overview) == set(ids)
        for name in ("nan-config", "not-json"):
            assert overview[name]["model"] == UNREADABLE and overview[name]["config_error"]
            assert store.get_run(ids[name])["config_error"].startswith(UNREADABLE)
        assert overview["good-2"]["model"] == "tiny" and overview["good-2"]["sampler"] == "mono"
        assert overview["good-2"]["figures"] == {"xquad-r": {("mono", "map"): 0.5}}
        assert len(store.list_runs()) == 5

    outcomes = finished(
        [
            hybtui("runs", "ls", "--store", str(path)),
            hybtui("runs", "ls", "--json", "--store", str(path)),
            hybtui("runs", "export", "--format", "md", "--store", str(path)),
            hybtui("runs", "show", ids["not-json"], "--store", str(path)),
        ]
    )
    assert all(code == 0 for code, _, _ in outcomes), [err for _, _, err in outcomes]
    table, listing, markdown, shown = (out for _, out, _ in outcomes)
    assert all(name in table for name in ids) and table.count(UNREADABLE) == 2
    by_name = {run["name"]: run for run in json.loads(listing)}
    assert set(by_name) == set(ids) and by_name["good-1"]["config"]["model"] == "tiny"
    assert by_name["nan-config"]["config"] == {} and by_name["nan-config"]["config_error"].startswith(UNREADABLE)
    assert all(name in markdown for name in ids) and markdown.count(UNREADABLE) == 2
    assert "not-json" in shown and UNREADABLE in shown


def test_the_app_lists_every_run_beside_an_unreadable_one(tmp_path):
    path = tmp_path / "store"
    ids = bad_rows_store(path)

    async def scenario(app, pilot):
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunsTable).row_count == len(ids),
            "every run listed",
        )
        table = app.screen.query_one(RunsTable)
        assert table.row_count == len(ids), app.screen.sub_title
        assert "malformed" not in app.screen.sub_title
        models = {str(table.get_row(ids[name])[1]): str(table.get_row(ids[name])[2]) for name in ids}
        assert models == {
            "good-1": "tiny",
            "nan-config": UNREADABLE,
            "good-2": "tiny",
            "not-json": UNREADABLE,
            "good-3": "tiny",
        }

    drive(path, scenario, size=(160, 30))


def test_the_app_form_refuses_nan(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    path = tmp_path / "store"

    async def scenario(app, pilot):
        screen, message = await new_run_form(pilot)
        for field, value in (("lr", "nan"), ("temperature", "inf"), ("alpha", "-inf")):
            screen.query_one(f"#{field}", Input).value = value
            await wait_until(
                pilot,
                lambda field=field: f"--{field} must be a finite number" in str(message.content),
                f"--{field} refused",
            )
            assert f"--{field} must be a finite number" in str(message.content), str(message.content)
            assert screen.query_one("#launch", Button).disabled
            screen.query_one(f"#{field}", Input).value = "0.5"

    drive(path, scenario, size=(100, 40))
    with Store(path) as store:
        assert store.list_runs() == []
