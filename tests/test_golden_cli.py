"""What the reading commands print for a fixed store, byte for byte: `runs ls`, `runs show`,
`compare`, `grids ls`, `grids report` and the exports, as recorded in tests/golden/.

The outputs were recorded before the package was reorganised; a refactor that changes a
single byte of them fails here. To re-record on purpose (a deliberate change of output):
``HYBTUI_RECORD_GOLDEN=1 pytest tests/test_golden_cli.py``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from unittest import mock

import pytest
from tui_fixtures import DEMO_GRID, DEMO_NOW, build_demo_store
from typer.testing import CliRunner

from hybtui.cli.app import app

GOLDEN = Path(__file__).parent / "golden"
#: What the commands are run with, after the demo store's names are put in for {name}.
COMMANDS = {
    "runs-ls": ["runs", "ls"],
    "runs-ls-json": ["runs", "ls", "--json"],
    "runs-ls-finished": ["runs", "ls", "--status", "finished"],
    "runs-show": ["runs", "show", "{mono-baseline}"],
    "runs-show-crashed": ["runs", "show", "{cross-en-de}"],
    "runs-show-json": ["runs", "show", "{hybrid-a0.5}", "--json"],
    "compare": ["compare", "{mono-baseline}", "{hybrid-a0.5}", "{cross-en-de}"],
    "compare-json": ["compare", "{mono-baseline}", "{hybrid-a0.5}", "--json"],
    "grids-ls": ["grids", "ls"],
    "grids-ls-json": ["grids", "ls", "--json"],
    "grids-report": ["grids", "report", "{reproduce-quick}"],
    "grids-report-json": ["grids", "report", "{reproduce-quick}", "--json"],
    "export-csv": ["runs", "export", "--format", "csv"],
    "export-json": ["runs", "export", "--format", "json"],
    "export-md": ["runs", "export", "--format", "md"],
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    store = tmp_path_factory.mktemp("golden") / "store"
    with mock.patch("time.time", lambda: DEMO_NOW):  # the events' times
        return store, build_demo_store(store)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_reading_commands_print_the_recorded_bytes(name, demo, monkeypatch):
    store, ids = demo
    monkeypatch.setenv("COLUMNS", "110")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    args = [ids[arg[1:-1]] if arg.startswith("{") else arg for arg in COMMANDS[name]]
    with mock.patch("time.time", lambda: DEMO_NOW + 30):
        result = CliRunner().invoke(app, [*args, "--store", str(store)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _check(GOLDEN / f"{name}.txt", result.stdout.replace(str(store), "<store>"))
    if name == "grids-report":
        _check(GOLDEN / "grid-report.md", (store / "grids" / ids[DEMO_GRID] / "report.md").read_text())


def _check(golden: Path, text: str) -> None:
    if os.environ.get("HYBTUI_RECORD_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"the output no longer matches {golden.name}"


def test_a_value_stored_as_null_is_shown_missing_not_a_crash(tmp_path):
    """SQLite keeps a NaN result as NULL: the comparison leaves it out of the per-language means."""
    store = tmp_path / "store"
    with mock.patch("time.time", lambda: DEMO_NOW):
        ids = build_demo_store(store)
    a, b = ids["mono-baseline"], ids["hybrid-a0.5"]
    with sqlite3.connect(store / "hybtui.db") as conn:
        conn.execute("UPDATE results SET value = NULL WHERE run_id = ? AND query_lang IN ('avg', 'de')", [a])
    result = CliRunner().invoke(app, ["compare", a, b, "--store", str(store)], catch_exceptions=False)
    assert result.exit_code == 0
    de = next(line for line in result.stdout.splitlines() if line.startswith("│ de "))
    assert "–" in de and "0.740" in de
