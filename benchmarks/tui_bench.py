"""The app at scale: the runs screen over 10,000 finished runs (each with a full XQuAD-R
result set), and the detail screen of a run with 100,000 steps of loss and learning rate.

    python benchmarks/tui_bench.py

Headless (Textual's Pilot) at 100×30, on a store it fills itself (no data directory needed).
Writes benchmarks/results/tui_bench.json.
Figures: how long until the runs table is filled (its first MAX_SHOWN rows), a filter
matching one run among all of them, a periodic refresh of it, the
first open of the detail view (reads all 200,000 points), and one live refresh of the
detail view (new points read, downsampled, plot redrawn and rendered) — the median of 20.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from environment import machine, write_result  # same folder
from textual.widgets import Input

from hybtui.config import RunConfig
from hybtui.results import AVERAGE, POOL_ALL
from hybtui.runs.store import Store
from hybtui.tui.app import HybtuiApp
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.screens.runs import MAX_SHOWN
from hybtui.tui.viewmodels import read_runs
from hybtui.tui.widgets.loss_plot import LossPlot
from hybtui.tui.widgets.runs_table import RunsTable

RUNS = 10_000
STEPS = 100_000
XQUAD_R = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
SIZE = (100, 30)


def result_rows(run_id: str, seed: int) -> list[tuple]:
    """A full XQuAD-R result set: mono/multi per language, cross per pair, and averages."""
    rows = []
    for q in XQUAD_R:
        for d in XQUAD_R:
            setting = "mono" if q == d else "cross"
            rows += [
                (run_id, 1000, "xquad-r", setting, q, d, m, (seed % 97) / 100, "seen", 1)
                for m in ("map", "recall@1", "ndcg@10", "mrr")
            ]
        rows += [
            (run_id, 1000, "xquad-r", "multi", q, POOL_ALL, m, 0.5, "seen", 1)
            for m in ("map", "recall@10", "ndcg@10", "rank_distance")
        ]
    for setting in ("mono", "cross", "multi"):
        for seen in (None, "seen"):
            rows += [
                (
                    run_id,
                    1000,
                    "xquad-r",
                    setting,
                    AVERAGE,
                    POOL_ALL if setting == "multi" else AVERAGE,
                    m,
                    (seed % 89) / 100,
                    seen,
                    1,
                )
                for m in ("map", "rank_distance", "ndcg@10")
            ]
    return rows


def fill_runs(store: Store) -> float:
    t0 = time.perf_counter()
    config = RunConfig(name=None).to_json()
    with store.db.conn:
        store.db.conn.executemany(
            "INSERT INTO runs (id, name, config, status, created_at, step, total_steps) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(f"run-{i:06d}", f"run {i}", config, "finished", 1.7e9 + i, 1000, 1000) for i in range(RUNS)],
        )
        store.db.conn.executemany(
            "INSERT INTO results (run_id, step, bench, setting, query_lang, doc_lang, metric, value, seen, final) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row for i in range(RUNS) for row in result_rows(f"run-{i:06d}", i)),
        )
    return time.perf_counter() - t0


async def runs_screen(path: Path) -> dict:
    started = time.perf_counter()
    app = HybtuiApp(path, refresh_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(RunsTable)
        while table.row_count < MAX_SHOWN:
            await pilot.pause(0.01)
        opened = time.perf_counter() - started
        t0 = time.perf_counter()
        app.screen.query_one("#filter", Input).value = "run 5000"  # one run among all 10,000
        while table.row_count != 1:
            await pilot.pause(0.005)
        filtered = time.perf_counter() - t0
        app.screen.query_one("#filter", Input).value = ""
        refreshes = []
        for _ in range(5):
            t0 = time.perf_counter()
            app.screen._next_read = 0.0  # a periodic refresh spaces itself on huge stores; time one anyway
            app.screen.reload()
            while app.screen._loading:
                await pilot.pause(0.005)
            await pilot.pause()
            refreshes.append(time.perf_counter() - t0)
        assert table.coordinate_to_cell_key((0, 0)).row_key.value == f"run-{RUNS - 1:06d}"  # newest first
    return {
        "open_s": round(opened, 3),
        "rows_in_table": MAX_SHOWN,
        "filter_one_of_all_s": round(filtered, 3),
        "refresh_median_s": round(statistics.median(refreshes), 3),
    }


def fill_metrics(store: Store) -> str:
    run_id = store.create_run(RunConfig(steps=STEPS + 10_000), status="running")
    with store.db.conn:
        store.db.conn.executemany(
            "INSERT INTO metrics (run_id, key, step, value, time) VALUES (?, ?, ?, ?, ?)",
            (
                (run_id, key, step, value, 1.7e9 + step)
                for step in range(1, STEPS + 1)
                for key, value in (("loss", 3.0 / (1 + step / 1000)), ("lr", 3e-5))
            ),
        )
    return run_id


async def detail_screen(path: Path, run_id: str) -> dict:
    app = HybtuiApp(path, refresh_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        t0 = time.perf_counter()
        screen = RunDetailScreen(path, run_id, refresh_s=3600)
        await app.push_screen(screen)
        plot = screen.query_one(LossPlot)
        while len(plot.points) < STEPS:
            await pilot.pause(0.01)
        await pilot.pause()
        opened = time.perf_counter() - t0
        refreshes, renders = [], []
        with Store(path) as writer:
            for i in range(20):
                first = STEPS + 1 + 10 * i
                writer.add_metrics(
                    run_id, [(key, step, 1.0) for step in range(first, first + 10) for key in ("loss", "lr")]
                )
                t0 = time.perf_counter()
                screen.reload()
                while screen._loading:
                    await pilot.pause(0.002)
                await pilot.pause()
                refreshes.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                plot.render()  # what the compositor calls: plotext builds the canvas
                renders.append(time.perf_counter() - t1)
        assert len(plot.points) == STEPS + 200
    return {
        "open_s": round(opened, 3),
        "refresh_median_s": round(statistics.median(refreshes), 4),
        "refresh_max_s": round(max(refreshes), 4),
        "plot_render_median_s": round(statistics.median(renders), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tui_bench.json")
    args = parser.parse_args()
    out: dict = {"machine": machine(), "runs": RUNS, "steps": STEPS, "terminal": f"{SIZE[0]}x{SIZE[1]}"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        with Store(path) as store:
            out["fill_runs_s"] = round(fill_runs(store), 1)
            t0 = time.perf_counter()
            read_runs(store)
            out["read_runs_s"] = round(time.perf_counter() - t0, 3)
        out["runs_screen"] = asyncio.run(runs_screen(path))
        with Store(path) as store:
            run_id = fill_metrics(store)
        out["detail_screen"] = asyncio.run(detail_screen(path, run_id))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import hybtui.tui.app"], check=True)
    out["app_import_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out, indent=1))
    write_result(args.out, out)


if __name__ == "__main__":
    main()
