"""Plain-text captures of every screen of the app, for the docs: docs/screens/<screen>.txt.

Runs `python -m hybtui --store store` in a detached tmux session (80x24) over a fresh
store filled with the demo data of the snapshot tests (tests/tui_fixtures.py), walks
through the screens with keys and writes what the pane shows:

    runs.txt        the run list
    new_run.txt     the new-run form (its defaults, checked against the data)
    run_detail.txt  a finished run: status, loss curve (raw and smoothed), learning rate
    run_languages.txt  its final mAP per language
    run_heatmap.txt    its X×Y cross-lingual matrix with a colour scale
    run_log.txt        its log, the store's events among the worker's lines
    compare.txt     two runs side by side
    grids.txt       the grids of `hybtui reproduce`
    grid_report.txt one grid's report

Usage (needs tmux, and the benchmark data, which the new-run form checks: set
HYBTUI_DATA_DIR to a data directory; the script refuses to start without it):

    HYBTUI_DATA_DIR=/path/to/data python scripts/capture_screens.py [--out docs/screens]

The demo times are set relative to the moment the store is built, so the captures read
the same every time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tui_fixtures import DEMO_GRID, DEMO_RUNS, build_demo_store, tmux_session  # noqa: E402

SIZE = (80, 24)


def write(out: Path, name: str, text: str) -> None:
    lines = [line.rstrip() for line in text.splitlines()]
    path = out / f"{name}.txt"
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def still(tmux, condition, what: str, timeout: float = 60) -> str:
    """Wait for ``condition`` on the pane, then until the pane stops changing; returns it."""
    tmux.wait_for(condition, timeout, what)
    text = tmux.settle(quiet_s=1.0, timeout=30)
    if not condition(text):
        raise AssertionError(f"{what}: the pane changed again; last capture:\n{text}")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screens", help="where to write the captures")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    if not os.environ.get("HYBTUI_DATA_DIR"):
        print("HYBTUI_DATA_DIR is not set: the new-run form checks the benchmark data there", file=sys.stderr)
        return 2
    data = Path(os.environ["HYBTUI_DATA_DIR"])
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="hybtui-capture-") as tmp:
        cwd = Path(tmp)
        env = {
            "HYBTUI_DATA_DIR": str(data),
            "HF_HUB_OFFLINE": "1",
            "TERM": "xterm-256color",
            "XDG_CACHE_HOME": str(cwd / "cache"),
        }
        ids = build_demo_store(cwd / "store", now=time.time())
        newest_first = [name for name, *_ in reversed(DEMO_RUNS)]
        with tmux_session([sys.executable, "-m", "hybtui", "--store", "store"], cwd, env, size=SIZE) as tmux:
            runs = still(tmux, lambda s: all(name in s for name in newest_first), "the run list")
            write(args.out, "runs", runs)

            tmux.send("n")
            form = still(tmux, lambda s: "ready:" in s and "checking" not in s, "the new-run form, checked", 120)
            write(args.out, "new_run", form)
            tmux.send("Escape")
            still(tmux, lambda s: "filter by name" in s, "back on the run list")

            finished = "hybrid-a0.5"
            tmux.send(*["Down"] * newest_first.index(finished), "Enter")
            detail = still(tmux, lambda s: "1 loss" in s and "smoothed" in s, f"the page of {finished}")
            write(args.out, "run_detail", detail)
            for key, name, condition in (
                ("3", "run_languages", lambda s: re.search(r"^\s*en\s+seen\s+0\.\d{3}", s, re.M)),
                ("4", "run_heatmap", lambda s: "scale" in s),
                ("5", "run_log", lambda s: "training done" in s),
            ):
                tmux.send(key)
                write(args.out, name, still(tmux, condition, name))
            tmux.send("Escape")
            still(tmux, lambda s: "filter by name" in s, "back on the run list")

            # The cursor is still on hybrid-a0.5: mark it and the run below (mono-baseline).
            tmux.send("Space", "Down", "Space", "m")
            compare = still(
                tmux, lambda s: "parameters that differ" in s and ids["mono-baseline"] in s, "the comparison"
            )
            write(args.out, "compare", compare)
            tmux.send("Escape")
            still(tmux, lambda s: "filter by name" in s, "back on the run list")

            tmux.send("g")
            grids = still(tmux, lambda s: ids[DEMO_GRID] in s and DEMO_GRID in s, "the grids")
            write(args.out, "grids", grids)
            tmux.send("Enter")
            report = still(tmux, lambda s: "Table 1" in s and "X-X-mono" in s, "the grid's report")
            write(args.out, "grid_report", report)
            tmux.send("Escape", "Escape")
            still(tmux, lambda s: "filter by name" in s, "back on the run list")

            tmux.send("q")
            tmux.wait_for(lambda s: not tmux.alive(), 15, "the app to exit on q")
    return 0


if __name__ == "__main__":
    sys.exit(main())
