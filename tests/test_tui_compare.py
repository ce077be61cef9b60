"""The compare screen you can steer (issue 15, items 4 and 8): live curves and tables, a
chosen baseline, up to 12 runs with distinct short labels, figures over what the runs share
with a warning naming the difference, the X×Y difference of two runs; and the heatmap
widget (colour scale over the values' range with a legend, three decimals, a metric switch).

Stores are built directly (no training): runs with loss curves and result rows in chosen
languages and metrics, under fixed ids so the snapshots read the same every time.
"""

from __future__ import annotations

import asyncio
import io
import re
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from unittest import mock

import pytest
from rich.console import Console
from test_tui_snapshots import app, demo, size, until  # noqa: F401 (fixtures)
from textual.app import App, ComposeResult
from textual.widgets import Static
from tui_fixtures import DEMO_RUNS, QUALITY, demo_loss, refreshed, wait_until

from hybtui.config import RunConfig
from hybtui.data.lareqa import LANGUAGES
from hybtui.reporting.compare import comparison, short_labels
from hybtui.reporting.heat import Scale, compact
from hybtui.reporting.scope import shared_scope
from hybtui.results import AVERAGE, ResultRow, headline, macro_averages
from hybtui.runs.store import Store
from hybtui.tui.app import HybtuiApp
from hybtui.tui.screens.compare import CompareScreen, CurvesPlot
from hybtui.tui.widgets.heatmap import Heatmap
from hybtui.tui.widgets.runs_table import RunsTable

XQUAD = LANGUAGES["xquad-r"]
#: Each cross metric as a factor of a pair's mAP (so every metric has its own values).
METRIC_FACTORS = {"map": 1.0, "recall@1": 0.9, "ndcg@10": 1.05}


def result_rows(shift: float, langs: tuple[str, ...] = XQUAD, bench: str = "xquad-r") -> list[ResultRow]:
    """Mono and cross rows in every metric of METRIC_FACTORS, multi mAP and rank distance,
    then the macro-averages, as an evaluation leaves them."""
    rows = []
    for x in langs:
        q = QUALITY[x] + shift * (0.5 + QUALITY[x])  # runs differ more in some languages
        for y in langs:
            setting, value = ("mono", q) if x == y else ("cross", 0.4 * (q + QUALITY[y] + shift))
            for metric, factor in METRIC_FACTORS.items():
                rows.append(ResultRow(bench, setting, x, y, metric, round(value * factor, 4), "seen"))
        rows.append(ResultRow(bench, "multi", x, "all", "map", round(0.72 * q, 4), "seen"))
        rows.append(ResultRow(bench, "multi", x, "all", "rank_distance", round(40 * (1 - q), 2), "seen"))
    return rows + macro_averages(rows, by_seen=False)


def mono_map(shift: float, langs=XQUAD) -> float:
    """The mono mAP macro-average of result_rows(shift) over ``langs``."""
    values = [r.value for r in result_rows(shift, langs) if r.setting == "mono" and r.metric == "map"]
    return sum(values[: len(langs)]) / len(langs)


@contextmanager
def fixed_ids(first: int = 0):
    """Run ids that read the same in every snapshot (``260106-110000-b000``, …)."""
    numbers = count(first)
    with mock.patch("hybtui.runs.database.random_id", lambda: f"260106-11{(n := next(numbers)):02d}00-b{n:03x}"):
        yield


def add_run(store: Store, config: RunConfig, shift: float = 0.0, langs=XQUAD, status: str = "finished") -> str:
    """A run with a loss curve up to its last step and, when finished, final results."""
    run_id = store.create_run(config)
    store.set_status(run_id, "running", pid=31337, host="gpu-node-2")
    store.add_metrics(run_id, [("loss", s, demo_loss(s, 5 * shift)) for s in range(5, config.steps + 1, 5)])
    store.heartbeat(run_id, step=config.steps)
    if status == "finished":
        store.add_results(run_id, result_rows(shift, langs), step=config.steps, final=True)
        store.set_status(run_id, "finished", exit_code=0)
    return run_id


def grid_of_runs(path: str | Path, n: int, first: int = 0) -> list[str]:
    """``n`` unnamed finished runs that differ by sampler, α and seed (as a grid's cells)."""
    cells = [("mono", 0.5), ("cross", 0.5), ("hybrid", 0.3), ("hybrid", 0.5), ("hybrid", 0.7)]
    with Store(path) as store, fixed_ids(first):
        return [
            add_run(
                store,
                RunConfig(sampler=cells[i % 5][0], alpha=cells[i % 5][1], seed=1 + i // 5, steps=200),
                shift=0.01 * i,
            )
            for i in range(n)
        ]


def text_of(renderable, width: int = 300) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(*(renderable if isinstance(renderable, list) else [renderable]))
    return console.file.getvalue()


def screen_text(screen) -> str:
    return "\n".join(text_of(s.content) for s in screen.query("#compare-tables Static"))


async def open_runs(pilot, added: int) -> None:
    """The run list read: the demo's runs and the ``added`` ones."""

    def listed() -> bool:
        tables = pilot.app.screen.query(RunsTable)
        return bool(tables) and tables.first().row_count == len(DEMO_RUNS) + added

    await until(pilot, listed, "the run list")


def push_compare(pilot, ids: list[str], refresh_s: float = 3600.0) -> CompareScreen:
    screen = CompareScreen(Path("store"), ids, refresh_s)
    pilot.app.push_screen(screen)
    return screen


def compared(screen: CompareScreen, n: int) -> bool:
    plots = screen.query(CurvesPlot)
    return screen.is_current and bool(plots) and len(plots.first().series) == n and bool(screen.labels)


# -- labels, scope and the difference matrix, without a terminal ----------------------------


def test_labels_are_names_when_distinct_else_what_differs_never_identical(tmp_path):
    ids = grid_of_runs(tmp_path / "s", 12)
    with Store(tmp_path / "s") as store:
        runs = [store.get_run(i) for i in ids]
        with fixed_ids(50):
            named = store.create_run(RunConfig(name="mine", steps=200))
            twin = store.create_run(RunConfig(name="mine", steps=200, seed=1))
        runs += [store.get_run(named), store.get_run(twin)]
    labels = short_labels(runs)
    assert len(set(labels)) == len(labels) == 14
    assert labels[:3] == ["mono s1", "cross s1", "hybrid α.3 s1"] and labels[8] == "hybrid α.5 s2"
    assert all(len(label) <= 20 for label in labels)
    # two runs both named "mine": neither is labelled by the shared name alone
    assert labels[12] != labels[13] and not {labels[12], labels[13]} & {"mine"}


def test_runs_evaluated_on_different_languages_compare_only_what_they_share(tmp_path):
    with Store(tmp_path / "s") as store, fixed_ids():
        a = add_run(store, RunConfig(name="a", steps=10), 0.0, ("de", "en", "zh"))
        b = add_run(store, RunConfig(name="b", steps=10), 0.05, ("en", "th", "zh"))
        runs = [store.get_run(a), store.get_run(b)]
        results = {r: store.results(r) for r in (a, b)}
    scope = shared_scope([results[a], results[b]], ["a", "b"])
    assert scope.notes == ("xquad-r: de,en,zh vs en,th,zh",) and scope.langs["xquad-r"] == {"en", "zh"}
    text = text_of(comparison(runs, results, baseline=1, labels=["a", "b"]))
    assert "xquad-r: de,en,zh vs en,th,zh" in text and "shares only (xquad-r: en,zh;" in text
    assert not re.search(r"^│ (de|th) ", text, re.M)  # no row for a language only one run has
    # a's mono mAP over en and zh only, against b's over en and zh (the baseline)
    mono_a, mono_b = mono_map(0.0, ("en", "zh")), mono_map(0.05, ("en", "zh"))
    row = next(line for line in text.splitlines() if "mono map" in line)
    assert f"{mono_a:.3f} {mono_a - mono_b:+.3f}" in row and f"{mono_b:.3f}" in row
    assert "headline figures (Δ against b)" in text
    assert headline(results[a])[("xquad-r", "mono", "map")] != round(mono_a, 4)  # the stored one is over 3


def test_colour_scale_spans_the_values_and_reads_three_decimals():
    scale = Scale.over([0.061, 0.07, 0.082])
    assert (scale.low, scale.high) == (0.061, 0.082)
    assert len({scale.colour(v) for v in (0.061, 0.066, 0.07, 0.075, 0.082)}) == 5  # close values apart
    assert str(scale.cell(0.0712)) == ".071" and compact(-0.0123, signed=True) == "-.012"
    assert compact(1.0) == "1.000"
    diverging = Scale.over([-0.02, 0.01], diverging=True)
    assert (diverging.low, diverging.high) == (-0.02, 0.02) and diverging.colour(0.0) == (247, 247, 247)
    assert str(diverging.legend()).startswith("scale -.020 worse") and str(diverging.legend()).endswith("+.020")


# -- the screen under Pilot ---------------------------------------------------------------


def test_compare_follows_running_runs_live(tmp_path):
    path = tmp_path / "store"
    with Store(path) as store, fixed_ids():
        done = add_run(store, RunConfig(name="done", steps=100))
        live = add_run(store, RunConfig(name="live", steps=100), status="running")

    async def main():
        async with HybtuiApp(path, refresh_s=3600).run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: pilot.app.screen.query(RunsTable), "the run list")
            screen = CompareScreen(path, [done, live], refresh_s=0.05)
            pilot.app.push_screen(screen)
            await wait_until(pilot, lambda: screen.is_current and compared(screen, 2), "the comparison", 20)
            plot = screen.query_one(CurvesPlot)
            legend = lambda: text_of(screen.query_one("#compare-legend", Static).content)  # noqa: E731
            assert len(plot.series[live]) == 20 and "running 100/100" in legend() and "figures at" not in legend()
            with Store(path) as store:
                store.add_metrics(live, [("loss", s, 0.3) for s in range(105, 151, 5)])
                store.add_results(live, result_rows(0.1), step=150, final=False)
                store.heartbeat(live, step=150)
            await wait_until(pilot, lambda: len(plot.series[live]) == 30, "the new loss points", 20)
            await wait_until(pilot, lambda: "(figures at step 150)" in legend(), "the periodic evaluation", 20)
            assert f"{mono_map(0.1):.3f} {mono_map(0.1) - mono_map(0.0):+.3f}" in screen_text(screen)
            with Store(path) as store:
                store.add_results(live, result_rows(0.2), step=150, final=True)
                store.set_status(live, "finished", exit_code=0)
            await wait_until(pilot, lambda: "running" not in legend(), "the run finished", 20)
            final = f"{mono_map(0.2):.3f} {mono_map(0.2) - mono_map(0.0):+.3f}"
            await wait_until(pilot, lambda: final in screen_text(screen), "its final figures", 20)

    asyncio.run(main())


def test_baseline_and_selected_run_steer_deltas_and_the_difference(demo):  # noqa: F811
    ids = grid_of_runs("store", 3)

    async def main():
        async with app().run_test(size=(100, 30)) as pilot:
            await open_runs(pilot, 3)
            screen = push_compare(pilot, ids)
            await until(pilot, lambda: compared(screen, 3), "the comparison")
            heatmap = screen.query_one(Heatmap)
            assert "Δ against mono" in screen_text(screen) and "Δ against mono" in screen.sub_title
            assert "cross − mono" in text_of(heatmap.query_one(Static).content)
            await pilot.press("b")  # the next run is the baseline: deltas change sign
            assert "Δ against cross" in screen_text(screen)
            await refreshed(pilot)  # a later read keeps saying which run is the baseline
            assert screen.sub_title.endswith("Δ against cross")
            row = next(line for line in screen_text(screen).splitlines() if "mono map" in line)
            assert f"{mono_map(0.0) - mono_map(0.01):+.3f}" in row and f"{mono_map(0.02) - mono_map(0.01):+.3f}" in row
            assert "hybrid α.3 − cross" in text_of(heatmap.query_one(Static).content)
            await pilot.press("s")  # the selection skips the baseline
            assert "mono − cross" in text_of(heatmap.query_one(Static).content)
            await pilot.press("2", "m")
            assert "R@1 Δ" in text_of(heatmap.query_one(Static).content)

    asyncio.run(main())


@pytest.mark.slow  # 12 runs' tables: 5 s on CI
def test_twelve_marked_runs_open_with_distinct_labels(demo):  # noqa: F811
    ids = grid_of_runs("store", 12)

    async def main():
        async with app().run_test(size=(120, 40)) as pilot:
            await open_runs(pilot, 12)
            await pilot.press(*["space", "down"] * 12, "m")
            screen = pilot.app.screen
            assert isinstance(screen, CompareScreen) and sorted(screen.run_ids) == sorted(ids)
            await until(pilot, lambda: compared(screen, 12), "the comparison")
            assert len(set(screen.labels)) == 12
            legend = text_of(screen.query_one("#compare-legend", Static).content, width=120)
            assert all(label in legend for label in screen.labels)

    asyncio.run(main())


class HeatmapApp(App):
    """The widget alone, as a page of the app would host it."""

    def __init__(self, rows: list[dict]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield Heatmap()

    def on_mount(self) -> None:
        heatmap = self.query_one(Heatmap)
        heatmap.show(self.rows, "xquad-r")
        heatmap.focus()


def one_run_rows() -> list[dict]:
    return [{**r.as_dict(), "step": 100, "final": True} for r in result_rows(0.0)]


def test_heatmap_switches_metric_and_shows_its_range():
    async def main():
        async with HeatmapApp(one_run_rows()).run_test(size=(80, 24)) as pilot:
            heatmap = pilot.app.query_one(Heatmap)
            shown = lambda: text_of(heatmap.query_one(Static).content, width=80)  # noqa: E731
            assert heatmap.metrics == ["map", "recall@1", "ndcg@10"]
            cross = [v for (q, d, m), v in cells("map").items() if q != d]
            assert f"scale {compact(min(cross))} " in shown() and shown().count(f" {compact(max(cross))}") >= 1
            assert "xquad-r mAP" in shown() and max(len(line) for line in shown().splitlines()) <= 80
            await pilot.press("m")
            assert heatmap.metric == "recall@1" and "xquad-r R@1" in shown()
            assert compact(round(0.4 * (QUALITY["de"] + QUALITY["en"]) * 0.9, 4)) in shown()
            await pilot.press("m", "m")
            assert heatmap.metric == "map"

    asyncio.run(main())


def cells(metric: str) -> dict[tuple[str, str, str], float]:
    return {
        (r.query_lang, r.doc_lang, r.metric): r.value
        for r in result_rows(0.0)
        if r.metric == metric and r.setting in ("mono", "cross") and r.query_lang != AVERAGE
    }


# -- snapshots ------------------------------------------------------------------------------


def test_snapshot_compare_two_runs(demo, snap_compare, size):  # noqa: F811
    ids = grid_of_runs("store", 2)

    async def run_before(pilot):
        await open_runs(pilot, 2)
        screen = push_compare(pilot, ids)
        await until(pilot, lambda: compared(screen, 2), "the comparison")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_snapshot_compare_nine_runs(demo, snap_compare, size):  # noqa: F811
    ids = [*grid_of_runs("store", 7), demo["hybrid-a0.5"], demo["hybrid-a0.3"]]

    async def run_before(pilot):
        await open_runs(pilot, 7)
        screen = push_compare(pilot, ids)
        await until(pilot, lambda: compared(screen, 9), "the comparison")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_snapshot_compare_different_languages(demo, snap_compare, size):  # noqa: F811
    with Store("store") as store, fixed_ids(40):
        a = add_run(store, RunConfig(name="de-en-zh", steps=200), 0.0, ("de", "en", "zh"))
        b = add_run(store, RunConfig(name="en-th-zh", steps=200), 0.03, ("en", "th", "zh"))

    async def run_before(pilot):
        await open_runs(pilot, 2)
        screen = push_compare(pilot, [a, b])
        await until(pilot, lambda: compared(screen, 2), "the comparison")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_snapshot_compare_difference_heatmap(demo, snap_compare, size):  # noqa: F811
    ids = grid_of_runs("store", 4)

    async def run_before(pilot):
        await open_runs(pilot, 4)
        screen = push_compare(pilot, ids)
        await until(pilot, lambda: compared(screen, 4), "the comparison")
        await pilot.press("s", "s", "2")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_snapshot_heatmap_widget(snap_compare, size):  # noqa: F811
    assert snap_compare(HeatmapApp(one_run_rows()), terminal_size=size)
