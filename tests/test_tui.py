"""Pilot tests of the app against a real store: the run list, its live refresh, the
filter, cancel/resume through the launcher, the detail screen, the new-run form (with a
real worker process) and the comparison of marked runs. Each opens the app with
``tui_fixtures.drive`` and waits on its workers or on what it shows, never for a fixed time."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
from cli_helpers import TINY_CONFIG
from rich.console import Console
from textual.command import CommandList, CommandPalette
from textual.widgets import Button, Input, Log, Select, SelectionList, Static
from tui_fixtures import drive, kill_group, new_run_form, record_grid, refreshed, settle, wait_until

from hybtui.config import RunConfig
from hybtui.formatting import human_duration
from hybtui.modeling import encoder as models
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.tui.run_page import language_rows
from hybtui.tui.screens.compare import CompareScreen
from hybtui.tui.screens.confirm import ConfirmScreen
from hybtui.tui.screens.grids import GridReportScreen, GridRunsTable, GridsScreen, GridsTable
from hybtui.tui.screens.help import HelpScreen
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.new_run_fields import join_spec, split_spec
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.screens.runs import RunsScreen
from hybtui.tui.viewmodels import downsample, train_languages
from hybtui.tui.widgets.grid_bars import GridBars, language_label
from hybtui.tui.widgets.language_table import LanguageTable
from hybtui.tui.widgets.loss_plot import LossPlot
from hybtui.tui.widgets.runs_table import RunsTable


def result_rows(shift: float = 0.0) -> list[dict]:
    """Final xquad-r results of a run trained on en,de: per language and macro-averages
    (every mAP moved by ``shift``)."""
    rows = []
    for setting, base in (("mono", 0.8 + shift), ("cross", 0.6 + shift), ("multi", 0.5 + shift)):
        for i, lang in enumerate(("de", "en", "th")):
            rows.append(
                {
                    "bench": "xquad-r",
                    "setting": setting,
                    "query_lang": lang,
                    "doc_lang": lang if setting == "mono" else ("en" if setting == "cross" else "all"),
                    "metric": "map",
                    "value": base - 0.1 * i,
                    "seen": "unseen" if lang == "th" else "seen",
                }
            )
        rows.append(
            {
                "bench": "xquad-r",
                "setting": setting,
                "query_lang": "avg",
                "doc_lang": "avg",
                "metric": "map",
                "value": base - 0.1,
                "seen": None,
            }
        )
    rows.append(
        {
            "bench": "xquad-r",
            "setting": "multi",
            "query_lang": "avg",
            "doc_lang": "avg",
            "metric": "rank_distance",
            "value": 12.5,
            "seen": None,
        }
    )
    return rows


def finished_run(store: Store, config: RunConfig, name: str, shift: float = 0.0) -> str:
    """A finished run with a loss curve, final results and a worker log, as a worker leaves it."""
    done = store.create_run(config, name=name)
    store.set_status(done, "running")
    store.add_metrics(done, [("loss", step, 2.0 / step + shift) for step in range(1, 11)])
    store.heartbeat(done, step=10)
    store.add_results(done, result_rows(shift), step=10, final=True)
    store.set_status(done, "finished")
    (store.run_dir(done) / "worker.log").write_text("step 10 loss 0.2\ntraining done\n")
    return done


def hold_the_slot(store: Store) -> str:
    """A run on another host holding the one slot, so queued runs stay queued: the app starts
    a queued run whenever a slot is free."""
    slot = store.create_run(RunConfig(model="tiny", steps=10), name="elsewhere", status="running")
    store.db.table("runs").update(slot, {"host": "another-host"})
    return slot


@pytest.fixture
def store(tmp_path):
    """A store with a finished run and a queued one, which waits behind the oldest run (``elsewhere``)."""
    with Store(tmp_path / "store") as store:
        hold_the_slot(store)
        finished_run(store, RunConfig(model="tiny", train=("mlqa-r:en,de",), steps=10), "finished-run")
        store.create_run(RunConfig(model="tiny", sampler="mono", train=("mlqa-r:en,de",), steps=10), name="queued-run")
        yield store


def cell(table: RunsTable, run_id: str, column: str) -> str:
    return str(table.get_cell(run_id, column))


def by_name(store: Store, name: str) -> str:
    return next(r["id"] for r in store.list_runs() if r["name"] == name)


def test_runs_table_shows_runs_newest_first_with_headline_figures(store):
    done, queued = by_name(store, "finished-run"), by_name(store, "queued-run")

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        assert [row.key.value for row in table.ordered_rows] == [queued, done, by_name(store, "elsewhere")]
        assert cell(table, done, "status") == "finished"
        assert cell(table, done, "train") == "en,de"
        assert [cell(table, done, c) for c in ("mono", "cross", "multi", "rank_distance")] == [
            "0.700",
            "0.500",
            "0.400",
            "12.50",
        ]
        assert cell(table, queued, "status") == "queued"
        assert cell(table, queued, "mono") == ""

    drive(store.path, scenario, size=(150, 30))


def test_enter_opens_detail_with_loss_plot_languages_and_log(store):
    done = by_name(store, "finished-run")

    async def scenario(app, pilot):
        await pilot.press("down", "enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.run_id == done
        assert len(screen.query_one(LossPlot).points) == 10
        languages = screen.query_one(LanguageTable)
        rows = [[str(c).split(" ")[0] for c in languages.get_row_at(i)] for i in range(languages.row_count)]
        assert rows[0][:5] == ["de", "seen", "0.800", "0.600", "0.500"]
        assert rows[2][:2] == ["th", "unseen"]
        assert rows[-1][0] == "avg"
        assert "training done" in "\n".join(screen.query_one(Log).lines)
        await pilot.press("escape")
        assert isinstance(app.screen.query_one(RunsTable), RunsTable)

    drive(store.path, scenario)


def test_detail_files_tab_shows_the_run_directory_and_its_disk_use(store):
    done = by_name(store, "finished-run")
    checkpoint = store.run_dir(done) / "checkpoints" / "step-0000010"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"w" * 2_000_000)
    (checkpoint / "checkpoint.json").write_text('{"step": 10, "files": ["model.safetensors"], "resumable": false}')

    async def scenario(app, pilot):
        await pilot.press("down", "enter", "6")
        await settle(pilot)
        shown = str(app.screen.query_one("#files", Static).render()).splitlines()
        assert shown[2:4] == ["run directory", str(store.run_dir(done))]
        assert re.fullmatch(r"disk 2\.0 MB \(1 checkpoint, 2\.0 MB\)", shown[5]), shown[5]

    drive(store.path, scenario)


def test_filter_hides_non_matching_runs_and_q_types_into_it(store):
    done = by_name(store, "finished-run")

    async def scenario(app, pilot):
        await pilot.press("slash", *"finished")
        await refreshed(pilot)  # a refresh meanwhile keeps the filter
        table = app.screen.query_one(RunsTable)
        assert [row.key.value for row in table.ordered_rows] == [done]
        await pilot.press("enter")
        assert table.has_focus
        await pilot.press("slash", *"q")
        assert app.is_running and app.screen.query_one(Input).value == "finishedq"
        assert table.row_count == 0

    drive(store.path, scenario)


def test_live_refresh_shows_new_steps_and_keeps_the_cursor(store):
    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        await pilot.press("down")
        highlighted = table.highlighted_run
        live = store.create_run(RunConfig(model="tiny", steps=100), name="live-run", status="running")
        store.add_metrics(live, [("loss", 40, 1.5)])
        store.heartbeat(live, step=40)
        await wait_until(pilot, lambda: table.row_count == 4, "the new run listed")
        assert table.row_count == 4
        assert cell(table, live, "status") == "running 40/100"
        assert table.highlighted_run == highlighted
        table.move_cursor(row=table.get_row_index(live))
        await pilot.press("enter")
        await settle(pilot)
        plot = app.screen.query_one(LossPlot)
        assert plot.points == [(40, 1.5)]
        store.add_metrics(live, [("loss", 41, 1.4)])
        await wait_until(pilot, lambda: len(plot.points) == 2, "the new step plotted")
        assert plot.points == [(40, 1.5), (41, 1.4)]

    drive(store.path, scenario)


def test_cancel_and_resume_go_through_the_launcher(store):
    queued = by_name(store, "queued-run")

    async def scenario(app, pilot):
        await pilot.press("c")  # the cursor starts on the newest run: the queued one
        await wait_until(
            pilot,
            lambda: cell(app.screen.query_one(RunsTable), queued, "status") == "cancelled",
            "the run shown cancelled",
        )
        assert store.get_run(queued)["status"] == "cancelled"
        assert cell(app.screen.query_one(RunsTable), queued, "status") == "cancelled"
        await pilot.press("down", "r")  # a finished run cannot be resumed
        await settle(pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "only crashed or cancelled runs can be resumed" in errors[0].message

    drive(store.path, scenario)


def test_formatting_helpers():
    assert human_duration(45) == "45s" and human_duration(185) == "3m05s"
    assert human_duration(7800) == "2h10m" and human_duration(4 * 86400 + 3 * 3600) == "4d03h"
    assert train_languages(["mlqa-r:en,de", "xquad-r"]) == "en,de all"
    xs, ys = downsample(np.arange(1.0, 101.0), np.arange(1.0, 101.0), 10)
    assert len(xs) == 10 and xs[0] == 5.5 and ys[-1] == 95.5
    xs, ys = downsample(np.arange(7.0), np.arange(7.0), 3)  # buckets of 3, 3 and 1
    assert xs.tolist() == [1.0, 4.0, 6.0]
    assert language_rows([], "xquad-r") == []


def fill_new_run(screen: NewRunScreen, train: list[str], **inputs: str) -> None:
    """The test's run: tiny, trained on mlqa-r ``train``, evaluated on xquad-r en."""
    screen.query_one("#model", Select).value = "tiny"
    for kind, langs in (("train", train), ("eval", ["en"])):
        languages = screen.query_one(f"#{kind}-langs", SelectionList)
        languages.deselect_all()
        for lang in langs:
            languages.select(lang)
    for field, value in inputs.items():
        screen.query_one(f"#{field}", Input).value = value


def test_new_run_form_launches_a_worker_and_opens_its_detail(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    models.prepare_tiny()  # so the worker starts at once
    path = tmp_path / "store"

    with Store(path) as store:  # a run on another host holds the one slot: the new run must queue
        slot = store.create_run(RunConfig(model="tiny"), name="elsewhere", status="running")
        store.db.execute("UPDATE runs SET host = 'another-host' WHERE id = ?", [slot])
        store.db.conn.commit()

    def status_shown(detail) -> str:
        return str(detail.query_one("#run-status", Static).content).split(" ", 1)[0]

    async def scenario(app, pilot):
        screen, message = await new_run_form(pilot)
        assert isinstance(screen, NewRunScreen)
        assert screen.query_one("#lr", Input).value == "3e-05"  # the paper's defaults
        fill_new_run(screen, ["en", "de"], steps="3", batch_size="8", max_length="32")
        launch = screen.query_one("#launch", Button)
        # Wait for the check of the filled form (the defaults were checked, and ready, before).
        await wait_until(
            pilot, lambda: "3 steps" in str(message.content) and not launch.disabled, "the filled form checked", 60
        )
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), "the launched run's detail", 30)
        detail = app.screen
        with Store(path) as store:
            run = store.get_run(detail.run_id)
            assert run["config"]["train"] == ["mlqa-r:de,en"] and run["config"]["eval"] == ["xquad-r:en"]
            assert run["config"]["data_dir"] == str(shared_data.resolve())
            await wait_until(pilot, lambda: status_shown(detail) == "queued", "the run shown queued", 5)
            store.set_status(slot, "finished")  # the slot frees: the queue advances
            launcher.start_queued(store)
            await wait_until(pilot, lambda: status_shown(detail) == "running", "the run shown running", 10)
            await wait_until(pilot, lambda: status_shown(detail) == "finished", "the run shown finished", 120)
            assert store.get_run(detail.run_id)["status"] == "finished", store.get_run(detail.run_id)["error"]
        await wait_until(pilot, lambda: len(detail.query_one(LossPlot).points) == 3, "the three steps plotted", 5)
        await wait_until(
            pilot, lambda: detail.query_one(LanguageTable).row_count == 2, "the final results", 5
        )  # en, then avg
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: app.screen.query_one(RunsTable).row_count == 2, "the run list with the new run", 5
        )

    try:
        drive(path, scenario, size=(80, 24))
    finally:  # a failed test must not leave its real worker training
        if (path / "hybtui.db").exists():
            with Store(path) as store:
                for r in store.list_runs(status="running"):
                    with contextlib.suppress(ProcessLookupError):
                        kill_group(r["pgid"] or r["pid"])


def test_new_run_form_refuses_invalid_input_and_records_nothing(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    path = tmp_path / "store"

    async def scenario(app, pilot):
        screen, message = await new_run_form(pilot)
        fill_new_run(screen, ["en", "de"], alpha="1.5")
        await wait_until(
            pilot, lambda: "--alpha must be within [0, 1]" in str(message.content), "the alpha refused", 10
        )
        assert screen.query_one("#launch", Button).disabled
        await pilot.press("ctrl+s")
        assert any(n.title == "cannot launch" for n in app._notifications)
        screen.query_one("#alpha", Input).value = "0.5"
        screen.query_one("#sampler", Select).value = "cross"
        fill_new_run(screen, ["en"])
        await wait_until(
            pilot, lambda: "has the single language en" in str(message.content), "the single language refused", 60
        )
        assert message.has_class("error") and screen.query_one("#launch", Button).disabled
        await pilot.press("ctrl+s", "escape", "y")  # the changed form is discarded once confirmed
        assert not isinstance(app.screen, NewRunScreen)
        with Store(path) as store:
            assert store.list_runs() == []

    drive(path, scenario, size=(80, 24))


def text_of(renderable) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(renderable)
    return console.file.getvalue()


def test_compare_marked_runs_shows_differences_figures_and_curves(store):
    hybrid = by_name(store, "finished-run")
    mono = finished_run(
        store, RunConfig(model="tiny", sampler="mono", train=("mlqa-r:en,de",), steps=10), "mono-run", shift=0.05
    )

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        await pilot.press("space", "m")  # one run is not a comparison
        assert any(n.title == "compare" for n in app._notifications)
        await pilot.press("down", "space", "space", "down", "space")  # marks and unmarks the queued run
        assert table.marked == [mono, hybrid]
        assert str(table.get_cell(mono, "name")).startswith("▶")  # at 80 columns the id column gives way
        await pilot.press("m")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await wait_until(pilot, lambda: len(screen.query("#compare-tables Static")) > 3, "the comparison tables", 20)
        text = "\n".join(text_of(s.content) for s in screen.query("#compare-tables Static"))
        cells = [re.findall(r"[^\s│┃|]+", line) for line in text.splitlines()]
        assert [row for row in cells if row[:1] == ["sampler"]] == [["sampler", "mono", "hybrid"]]
        assert mono in text and hybrid in text
        assert "0.750" in text and "0.700" in text  # mono mAP of each run
        assert "-0.050" in text or "−0.050" in text  # the delta against the first marked run
        curves = screen.query_one(LossPlot).series
        assert len(curves) == 2 and all(len(points) == 10 for points in curves.values())
        await pilot.press("escape")
        assert app.screen.query_one(RunsTable) is table

    drive(store.path, scenario, size=(80, 24))


def test_spec_spelling_matches_the_cli():
    assert split_spec("mlqa-r") == ("mlqa-r", ("ar", "de", "en", "es", "hi", "vi", "zh"))
    assert split_spec("xquad-r:en,de") == ("xquad-r", ("en", "de"))
    assert join_spec("mlqa-r", ["en", "de"]) == "mlqa-r:de,en"
    assert join_spec("mlqa-r", list(split_spec("mlqa-r")[1])) == "mlqa-r"


def shown_runs(table: RunsTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def test_sort_cycles_orders_and_keeps_the_cursor_and_marks(store):
    done, queued, slot = by_name(store, "finished-run"), by_name(store, "queued-run"), by_name(store, "elsewhere")
    best = finished_run(
        store, RunConfig(model="tiny", sampler="mono", train=("mlqa-r:en,de",), steps=10), "z-best", shift=0.05
    )

    async def scenario(app, pilot):
        screen, table = app.screen, app.screen.query_one(RunsTable)
        assert shown_runs(table) == [best, queued, done, slot] and "newest first" in screen.sub_title
        await pilot.press("space", "down")  # a marked run sorts by its id like any other
        await pilot.press("s")
        assert shown_runs(table) == [slot, done, queued, best] and "name" in screen.sub_title
        assert table.highlighted_run == queued
        await pilot.press("s", "s")
        assert "mono mAP" in screen.sub_title
        await refreshed(pilot)  # a refresh keeps the order
        assert shown_runs(table) == [best, done, queued, slot]  # 0.750, 0.700, not evaluated last
        assert table.highlighted_run == queued and table.marked == [best]
        await pilot.press("s", "s", "s", "s")
        assert shown_runs(table) == [best, queued, done, slot] and "newest first" in screen.sub_title

    drive(store.path, scenario)


def test_delete_asks_first_refuses_running_runs_and_drops_marks(store):
    done, queued = by_name(store, "finished-run"), by_name(store, "queued-run")
    live = store.create_run(RunConfig(model="tiny", steps=100), name="live-run", status="running")

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        await pilot.press("down")  # no marks: the highlighted run
        assert table.highlighted_run == queued
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen) and "delete 1 run(s)" in text_of(
            app.screen.query_one("#confirm-question", Static).content
        )
        await pilot.press("n")
        await settle(pilot)
        assert store.get_run(queued) and store.run_dir(queued).is_dir()
        await pilot.press("d", "y")
        await wait_until(pilot, lambda: queued not in shown_runs(table), "the queued run deleted", 5)
        assert not (store.path / "runs" / queued).exists()
        await pilot.press("up", "space", "down", "space")  # the running run and the finished one
        assert table.marked == [live, done]
        await pilot.press("d", "y")
        await wait_until(
            pilot, lambda: shown_runs(table) == [live, by_name(store, "elsewhere")], "the finished run deleted", 5
        )
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert any("is running" in message for message in errors)
        assert table.marked == [live] and store.get_run(live)["status"] == "running"

    drive(store.path, scenario)


def test_export_writes_markdown_and_csv_of_the_shown_or_marked_runs(store):
    done, queued = by_name(store, "finished-run"), by_name(store, "queued-run")
    exports = store.path / "exports"

    def written() -> dict[str, str]:
        return {path.suffix: path.read_text() for path in exports.glob("runs-*")} if exports.is_dir() else {}

    async def scenario(app, pilot):
        await pilot.press("slash", *"finished", "enter", "e")  # no marks: the runs the filter shows
        await wait_until(pilot, lambda: set(written()) == {".md", ".csv"}, "the export written", 5)
        files = written()
        assert done in files[".md"] and queued not in files[".md"]
        assert f"{done},finished-run,tiny,hybrid" in files[".csv"] and "0.8" in files[".csv"]
        assert any(n.title == "exported 1 run(s)" for n in app._notifications)
        for path in exports.iterdir():
            path.unlink()
        await pilot.press("slash", "ctrl+u", "enter", "up", "space", "e")  # the marked run
        await wait_until(pilot, lambda: set(written()) == {".md", ".csv"}, "the export written", 5)
        assert queued in written()[".md"] and done not in written()[".md"]

    drive(store.path, scenario)


def grid_store(path) -> tuple[Store, str, list[dict]]:
    """A reproduction grid as tests/test_reproduce.py builds it (seeds 1 and 2, one run
    deleted), each run with Table 1 averages and multi mAP for en (seen) and th (unseen)."""
    store = Store(path)
    hold_the_slot(store)
    grid_id, cells = record_grid(store, per_language=True)
    return store, grid_id, cells


def test_grids_screen_opens_a_live_report_with_table1_deltas_bars_and_statuses(tmp_path):
    store, grid_id, cells = grid_store(tmp_path / "store")

    async def scenario(app, pilot):
        await pilot.press("g")
        assert isinstance(app.screen, GridsScreen)
        grids = app.screen.query_one(GridsTable)
        await wait_until(pilot, lambda: grids.row_count == 1, "the grid listed", 5)
        assert [str(c) for c in grids.get_row(grid_id)][:3] == [grid_id, "g", "0/5"]
        await pilot.press("enter")
        report = app.screen
        assert isinstance(report, GridReportScreen) and report.grid_id == grid_id
        tables = report.query_one("#grid-tables", Static)
        await wait_until(pilot, lambda: "zero-shot" in text_of(tables.content), "Table 1", 5)
        rows = {line.strip().split("  ")[0]: line for line in text_of(tables.content).splitlines()}
        assert "0.400" in rows["zero-shot"] and "0.500" in rows["X-X-mono"]  # mono mAP, one seed left
        assert "0.700 ± 0.141" in rows["hybrid α=0.5"]
        assert "+0.300" in rows["hybrid α=0.5 − zero-shot"]
        bars = report.query_one(GridBars)
        assert [language_label(lang, info) for lang, info in bars.languages.items()] == ["en", "th†‡"]
        await pilot.press("4")
        statuses = [str(report.query_one(GridRunsTable).get_row_at(i)[2]) for i in range(5)]
        assert statuses.count("queued") == 4 and "deleted" in statuses
        assert "refreshing" in str(report.query_one("#grid-summary", Static).content)
        for cell in cells[:2] + cells[3:]:  # every run ends: the report stops re-reading
            store.set_status(cell["run_id"], "running")
            store.set_status(cell["run_id"], "finished")
        summary = report.query_one("#grid-summary", Static)
        await wait_until(pilot, lambda: "4/5 runs finished." in str(summary.content), "the report of the ended grid", 5)
        assert [str(report.query_one(GridRunsTable).get_row_at(i)[2]) for i in range(5)].count("finished") == 4
        await pilot.press("escape")
        await wait_until(pilot, lambda: str(grids.get_row(grid_id)[2]) == "4/5", "the grid list updated", 5)
        await pilot.press("escape")
        assert isinstance(app.screen.query_one(RunsTable), RunsTable)

    try:
        drive(store.path, scenario)
    finally:
        store.close()


def test_question_mark_lists_the_keys_of_the_screen_underneath(store):
    async def scenario(app, pilot):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = text_of(app.screen.query_one("#help-keys", Static).content)
        for line in ("d  Delete", "e  Export", "s  Sort", "g  Grids", "^t  Light/dark theme"):
            assert re.search(r"\s+".join(map(re.escape, line.split("  "))), keys), line
        assert "Cursor up" not in keys  # Textual's own navigation is not repeated
        assert "command palette" in str(app.screen.query_one("#help-palette", Static).content)
        await pilot.press("question_mark")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("g", "question_mark")
        assert "Open report" in text_of(app.screen.query_one("#help-keys", Static).content)
        await pilot.press("escape")
        assert isinstance(app.screen, GridsScreen)
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-dark"

    drive(store.path, scenario)


def test_command_palette_offers_the_run_list_actions(store):
    async def scenario(app, pilot):
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        commands = app.screen.query_one(CommandList)
        await wait_until(pilot, lambda: commands.option_count > 0, "the palette's commands", 5)
        titles = {str(commands.get_option_at_index(i).prompt).split("\n")[0] for i in range(commands.option_count)}
        assert {
            "New run",
            "Compare marked runs",
            "Grids and reproduction reports",
            "Delete marked runs",
            "Export runs",
            "Sort runs",
            "Theme",
        } <= titles
        await pilot.press(*"sort runs")
        await settle(pilot)  # the palette searches in a worker
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and "name" in app.screen.sub_title,
            "the runs sorted by name",
            5,
        )

    drive(store.path, scenario)


def test_run_list_fits_80_columns_and_recovers_after_resizes(store):
    done = by_name(store, "finished-run")

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        keys = lambda: [c.key.value for c in table.ordered_columns]  # noqa: E731
        assert keys()[:3] == ["id", "name", "model"]
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: "id" not in keys(), "the columns fitted to 80")
        assert keys() == ["name", "sampler", "status", "mono", "cross", "multi", "rank_distance", "age"]
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= 80
        assert cell(table, done, "mono") == "0.700"
        await pilot.resize_terminal(150, 30)
        await wait_until(pilot, lambda: "train" in keys(), "the columns back at 150")
        assert "train" in keys() and cell(table, done, "train") == "en,de"

    drive(store.path, scenario, size=(150, 30))


def test_new_run_form_offers_miracl_for_evaluation_only(store):
    async def scenario(app, pilot):
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        evaluation, training = form.query_one("#eval-bench", Select), form.query_one("#train-bench", Select)
        assert "miracl" in [value for _, value in evaluation._options]
        assert "miracl" not in [value for _, value in training._options]
        evaluation.value = "miracl"
        await wait_until(
            pilot,
            lambda: "sw" in [o.value for o in form.query_one("#eval-langs", SelectionList).options],
            "MIRACL's languages offered",
        )
        assert "sw" in [o.value for o in form.query_one("#eval-langs", SelectionList).options]
        assert form._config().eval == ("miracl",)

    drive(store.path, scenario, size=(100, 40))


def test_a_huge_store_fills_the_table_with_the_first_runs_and_filters_all(store, monkeypatch):
    from hybtui.tui.screens import runs as runs_screen

    monkeypatch.setattr(runs_screen, "MAX_SHOWN", 2)
    store.create_run(RunConfig(model="tiny", steps=10), name="newest-run")
    oldest = store.list_runs()[-1]

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        assert table.row_count == 2 and "first 2 of 4" in app.screen.sub_title
        assert oldest["id"] not in [row.key.value for row in table.ordered_rows]
        app.screen.query_one(Input).value = oldest["name"]
        await wait_until(pilot, lambda: table.row_count == 1, "the filter applied")
        assert [row.key.value for row in table.ordered_rows] == [oldest["id"]]

    drive(store.path, scenario, size=(150, 30))


def test_cancelling_a_running_run_checkpoints_it_and_shows_cancelled(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    models.prepare_tiny()
    path = tmp_path / "store"
    config = TINY_CONFIG.replace(train=("mlqa-r:en,de",), steps=5000, data_dir=str(shared_data))
    with Store(path) as store:
        run_id = launcher.submit(store, config, name="long-run")

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        with Store(path) as store:
            await wait_until(pilot, lambda: (store.get_run(run_id)["step"] or 0) >= 2, "two steps trained", 120)
        await wait_until(pilot, lambda: cell(table, run_id, "status").startswith("running"), "the run shown running", 5)
        await pilot.press("c")
        await wait_until(
            pilot, lambda: cell(table, run_id, "status").startswith("cancelled"), "the run shown cancelled", 60
        )
        with Store(path) as store:
            run = store.get_run(run_id)
            assert run["status"] == "cancelled" and run["exit_code"] == 0
            assert [a["step"] for a in store.artifacts(run_id, "checkpoint")] == [run["step"]]

    try:
        drive(path, scenario, size=(150, 30))
    finally:
        with Store(path) as store:
            for r in store.list_runs(status="running"):
                with contextlib.suppress(ProcessLookupError):
                    kill_group(r["pgid"] or r["pid"])
