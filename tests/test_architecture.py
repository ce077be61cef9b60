"""The shape of the package, checked: imports go one way between the layers, the app and
the reading commands load no torch, and no module or function outgrows what a reader holds.

Layers, bottom to top (docs/ARCHITECTURE.md): the foundation modules at the top of the
package, then data, modeling, evaluation, training, runs, reporting, tui, cli. A module may
import its own layer and the layers below it, never above — with every import counted,
also those inside functions and under TYPE_CHECKING. The app and the CLI see training only
through its public face: the sampler (a dry run is a command) and the observer interface.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hybtui"
#: Rank of each sub-package; the modules directly in hybtui/ are the foundation (rank 0).
RANKS = {"data": 1, "modeling": 2, "evaluation": 3, "training": 4, "runs": 5, "reporting": 6, "tui": 7, "cli": 8}
#: What the app and the CLI may import from training.
TRAINING_PUBLIC = {"hybtui.training.sampling", "hybtui.training.callbacks"}
#: The entry point runs the CLI: it sits above everything.
TOP = {"hybtui.__main__"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str) -> set[str]:
    """Every hybtui module `source` (the module `name`) imports, wherever the import is."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import (the package uses absolute imports only)"
            # `from hybtui.x import y`: y may be a module (hybtui.x.y) or a name in hybtui.x
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in found if m == "hybtui" or m.startswith("hybtui.")}


def rank(module: str) -> float:
    parts = module.split(".")
    if module in TOP:
        return 99
    if len(parts) == 1:
        return 0
    return RANKS.get(parts[1], 0)


def violations(name: str, source: str, known: set[str]) -> list[str]:
    """The imports of module `name` that break the layering."""
    found = []
    for target in sorted(imported_modules(source, name) & known):
        if rank(target) > rank(name):
            found.append(f"{name} imports {target} (a layer above it)")
        if (
            rank(name) in (RANKS["tui"], RANKS["cli"])
            and target.startswith("hybtui.training.")
            and target not in TRAINING_PUBLIC
        ):
            found.append(f"{name} imports {target} (training internals; only {sorted(TRAINING_PUBLIC)})")
    return found


def all_modules() -> dict[str, str]:
    return {module_name(p): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_imports_go_one_way_between_the_layers():
    modules = all_modules()
    known = set(modules)
    problems = [v for name, source in modules.items() for v in violations(name, source, known)]
    assert problems == []


def test_the_layer_check_catches_what_it_forbids():
    """The checker itself: an upward import, a lazy one and a training internal are all found."""
    known = set(all_modules())
    assert violations("hybtui.data.sources", "from hybtui.runs import store\n", known)
    assert violations("hybtui.training.trainer", "def f():\n    from hybtui.tui.app import run_app\n", known)
    assert violations("hybtui.evaluation.evaluate", "import hybtui.training.trainer\n", known)
    assert violations("hybtui.tui.viewmodels", "from hybtui.training import checkpoint\n", known)
    assert violations("hybtui.cli.app", "from hybtui.training.trainer import Trainer\n", known)
    assert violations("hybtui.config", "from hybtui.data import sources\n", known)
    assert not violations("hybtui.cli.app", "from hybtui.training import sampling\n", known)
    assert not violations("hybtui.runs.worker", "from hybtui.training.trainer import Trainer\n", known)


#: Imported in a fresh interpreter: the app, every screen and widget, the store and the
#: reporting code must leave torch and transformers unloaded.
TORCH_FREE = """
import importlib, json, pkgutil, sys
import hybtui.tui, hybtui.reporting
names = ["hybtui.cli.app", "hybtui.runs.store", "hybtui.runs.launcher", "hybtui.runs.grid", "hybtui.runs.disk",
         "hybtui.data.checks"]
for package in (hybtui.tui, hybtui.reporting):
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "heavy": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""


def test_the_app_the_store_and_the_reports_import_no_torch():
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_FREE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    )
    report = json.loads(proc.stdout)
    assert "hybtui.tui.app" in report["imported"] and "hybtui.tui.screens.new_run" in report["imported"]
    assert report["heavy"] == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_readable(path):
    source = path.read_text()
    lines = len(source.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
