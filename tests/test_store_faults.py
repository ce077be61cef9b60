"""A store that cannot be used is refused in one line by every command, and left untouched.

Real files and real CLI processes: a hybtui.db with bytes flipped in its middle, a file
that is not SQLite, a schema from a newer hybtui, and a store on a tmpfs remounted
read-only (root ignores chmod), which can still be browsed but not written."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_helpers import hybtui

from hybtui.config import RunConfig
from hybtui.errors import StoreCorrupt, StoreReadOnly, StoreTooNew
from hybtui.modeling import encoder as models
from hybtui.runs.schema import SCHEMA_VERSION
from hybtui.runs.store import Store

CONFIG = RunConfig(model="tiny", train=("mlqa-r:en,de",), steps=2, batch_size=8)
TRAIN = ["train", "--detach", "--model", "tiny", "--train", "mlqa-r:en,de", "--steps", "1", "--batch-size", "8"]
REPRODUCE = ["reproduce", "--quick", "--detach", "--model", "tiny", "--steps", "1", "--batch-size", "8"]


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file under the store with its sha256: what "writes nothing" compares."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def filled_store(path: Path, runs: int = 40) -> list[str]:
    """A store of finished-looking runs with metrics and events: many pages, so the middle
    of the file is b-tree pages, not free space."""
    with Store(path) as store:
        ids = [store.create_run(CONFIG, name=f"run-{i}") for i in range(runs)]
        for run_id in ids:
            store.add_metrics(run_id, [("loss", step, 1.0 / step) for step in range(1, 60)])
            store.add_event(run_id, "info", "x" * 200)
        store.create_grid("g", {"cells": []})
    return ids


def flip_middle(db: Path, length: int = 4096) -> None:
    data = bytearray(db.read_bytes())
    middle = len(data) // 2
    data[middle - length // 2 : middle + length // 2] = bytes(
        b ^ 0xFF for b in data[middle - length // 2 : middle + length // 2]
    )
    db.write_bytes(bytes(data))


def flip_page_holding(db: Path, needle: bytes) -> None:
    """Flip every byte of the b-tree page that holds `needle`: a page the reads under test
    must meet, whatever indexes the schema adds around it."""
    data = bytearray(db.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    start = data.index(needle) // size * size
    data[start : start + size] = bytes(b ^ 0xFF for b in data[start : start + size])
    db.write_bytes(bytes(data))


def commands(ids: list[str], every: bool) -> list[list[str]]:
    """The commands that open the store, the app (no command) included: every one, or one
    reader, one writer and the app (the default run; each command costs seconds)."""
    if not every:
        return [["runs", "ls"], TRAIN, []]
    return [
        ["runs", "ls"],
        ["runs", "show", ids[0]],
        ["runs", "export", "--format", "md"],
        ["compare", ids[0], ids[1]],
        TRAIN,
        REPRODUCE,
        ["grids", "ls"],
        [],
    ]


@pytest.fixture
def offline(tmp_path, shared_data, monkeypatch) -> Path:
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    monkeypatch.setenv("HYBTUI_STORE", str(tmp_path / "store"))
    models.prepare_tiny()
    return tmp_path / "store"


def damage(store: Path, how: str) -> None:
    db = store / "hybtui.db"
    if how == "corrupted":
        flip_middle(db)
    elif how == "not-sqlite":
        db.write_bytes(b"id,name\n1,not a database\n" * 300)
    else:
        conn = sqlite3.connect(db)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()


EXPECTED = {
    "corrupted": "is corrupted",
    "not-sqlite": "is not a SQLite database",
    "future-schema": "was written by a newer hybtui",
}


def check_refusals(store: Path, how: str, every: bool) -> None:
    ids = filled_store(store)
    damage(store, how)
    before = fingerprint(store)
    for args in commands(ids, every):
        proc = hybtui(*args)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("hybtui: error: "), (args, proc.stderr)
        assert str(store / "hybtui.db") in lines[0] and EXPECTED[how] in lines[0], (args, lines[0])
        assert "Traceback" not in proc.stdout + proc.stderr
        assert fingerprint(store) == before, args


@pytest.mark.parametrize("how", list(EXPECTED))
def test_a_bad_database_is_refused_in_one_line_and_left_untouched(offline, how):
    check_refusals(offline, how, every=False)


@pytest.mark.slow
@pytest.mark.parametrize("how", list(EXPECTED))
def test_every_command_refuses_a_bad_database_in_one_line_and_writes_nothing(offline, how):
    check_refusals(offline, how, every=True)


def test_the_store_api_raises_specific_errors(tmp_path):
    filled_store(tmp_path / "a", runs=30)
    flip_middle(tmp_path / "a" / "hybtui.db")
    with pytest.raises(StoreCorrupt, match="hybtui.db is corrupted"):
        Store(tmp_path / "a")
    filled_store(tmp_path / "b", runs=1)
    damage(tmp_path / "b", "future-schema")
    with pytest.raises(StoreTooNew, match=f"schema version {SCHEMA_VERSION + 1}"):
        Store(tmp_path / "b")


def test_a_damaged_page_met_after_opening_is_one_line_too(offline, monkeypatch):
    """Above the quick_check size a damaged page is found only when read: still one line."""
    ids = filled_store(offline)
    flip_page_holding(offline / "hybtui.db", b"run-20")
    monkeypatch.setattr("hybtui.runs.database.QUICK_CHECK_MAX_BYTES", 0)
    with Store(offline) as store:
        with pytest.raises(StoreCorrupt, match="is corrupted"):
            store.list_runs()
            for run_id in ids:
                store.metrics_since(run_id)
                store.latest_metrics(run_id)
                store.events(run_id)
        with pytest.raises(StoreCorrupt, match="is corrupted"):
            store.check_writable()  # the quick_check before a write on a large store


@pytest.fixture
def read_only_store(tmp_path, offline):
    """A store with two runs on a tmpfs, remounted read-only."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        store = mount / "store"
        ids = filled_store(store, runs=2)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield store, ids
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_read_only_store_can_be_browsed_but_not_written(read_only_store, monkeypatch):
    store, ids = read_only_store
    monkeypatch.setenv("HYBTUI_STORE", str(store))
    before = fingerprint(store)
    listed = hybtui("runs", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in json.loads(listed.stdout)} == set(ids)
    shown = hybtui("runs", "show", ids[0])
    assert shown.returncode == 0 and "run-" in shown.stdout, shown.stderr
    for args in (TRAIN, ["runs", "rm", "--yes", ids[0]]):
        proc = hybtui(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.splitlines() == [
            f"hybtui: error: the run store {store} is read-only "
            f"({store}/hybtui.db cannot be written); it can be browsed, "
            f"not changed"
        ], args
    assert fingerprint(store) == before
    with Store(store) as opened:
        assert opened.read_only and {r["id"] for r in opened.list_runs()} == set(ids)
        with pytest.raises(StoreReadOnly):
            opened.create_run(CONFIG)


def test_the_app_lists_a_read_only_store(read_only_store):
    from tui_fixtures import drive, wait_until

    from hybtui.tui.widgets.runs_table import RunsTable

    store, ids = read_only_store

    async def scenario(app, pilot) -> int:
        await wait_until(pilot, lambda: app.screen.query_one(RunsTable).row_count == len(ids), "every run listed")
        assert str(store) in app.screen.sub_title and "error" not in app.screen.sub_title.lower()
        return app.screen.query_one(RunsTable).row_count

    assert drive(store, scenario, size=(80, 24)) == len(ids)
