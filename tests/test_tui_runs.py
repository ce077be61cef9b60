"""The run list (hybtui/tui/screens/runs.py): filtering by field, the delete question with marks
hidden by a filter, reversed sorts and cleared marks, the theme kept in the store's settings, a
status column that never cuts a live status, names told apart at 80 columns, α only where the
sampler mixes, and screenshots saved where the store is. Pilot tests over real stores, each
waiting on what the app shows; SVG snapshots at 80x24 and 160x48 in
tests/__snapshots__/test_tui_runs/ (look at them after an intended change, as
tests/test_tui_snapshots.py says)."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import test_tui_snapshots as snapshots
from textual.widgets import Input, Static
from textual.widgets._footer import FooterKey
from tui_fixtures import DEMO_NOW, demo_run_id, drive, settle, wait_until

from hybtui.config import RunConfig
from hybtui.reporting.export import hybrid_alpha
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.tui.run_filter import RunFilter
from hybtui.tui.screens.confirm import ConfirmScreen
from hybtui.tui.screens.runs import RunsScreen
from hybtui.tui.viewmodels import status_text
from hybtui.tui.widgets.runs_table import RunsTable, elide_middle

#: The snapshot tests' fixtures: the demo store (frozen clock) and the two terminal sizes.
demo, size = snapshots.demo, snapshots.size
app, open_runs, row_of, until = snapshots.app, snapshots.open_runs, snapshots.row_of, snapshots.until
#: How often tests that change nothing behind the app's back re-read the store: never, in effect
#: (what they do reads the runs again itself).
QUIET = 3600.0
#: Four runs of a grid whose names differ only at their end (what `hybtui reproduce` names them).
GRID_NAMES = tuple(f"reproduce-quick {label} seed {seed}" for seed in (1, 2) for label in ("hybrid α=0.5", "X-X-mono"))


def add_grid_runs(path) -> dict[str, str]:
    """GRID_NAMES as queued runs with fixed ids, created 10 to 40 minutes before DEMO_NOW."""
    ids = iter(demo_run_id(100 + i, DEMO_NOW - 60 * (40 - 10 * i)) for i in range(len(GRID_NAMES)))
    out = {}
    with Store(path) as store, mock.patch("hybtui.runs.database.random_id", lambda: next(ids)):
        for i, name in enumerate(GRID_NAMES):
            hybrid = "hybrid" in name
            config = RunConfig(name=name, sampler="hybrid" if hybrid else "mono", steps=60)
            out[name] = store.create_run(config)
            store.db.table("runs").update(out[name], {"created_at": DEMO_NOW - 60 * (40 - 10 * i)})
    return out


def shown(table: RunsTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def text_of(static: Static) -> str:
    return str(static.render())


# -- pure parts ------------------------------------------------------------------------------


def test_filter_terms_parse_fields_and_keep_other_colons_as_words():
    parsed = RunFilter.parse("Status:Running mlqa-r:en lang:th big")
    assert parsed.terms == (("status", "running"), ("lang", "th"))
    assert parsed.words == ("mlqa-r:en", "big")
    assert not RunFilter.parse("   ")


def test_elide_middle_keeps_the_distinguishing_end():
    assert elide_middle("short", 14) == "short"
    cut = [elide_middle(name, 15) for name in GRID_NAMES]
    assert all(len(name) == 15 and "…" in name for name in cut) and len(set(cut)) == len(GRID_NAMES)
    assert cut[0].endswith("0.5 seed 1") and cut[3].endswith("mono seed 2")


def test_alpha_only_for_a_hybrid_run_that_trains(tmp_path):
    with Store(tmp_path / "store") as store:
        runs = {
            name: store.get_run(store.create_run(config))
            for name, config in {
                "hybrid": RunConfig(sampler="hybrid", alpha=0.3),
                "mono": RunConfig(sampler="mono", alpha=0.3),
                "cross": RunConfig(sampler="cross"),
                "zero-shot": RunConfig(sampler="hybrid", steps=0),
            }.items()
        }
    assert {name: hybrid_alpha(run) for name, run in runs.items()} == {
        "hybrid": 0.3,
        "mono": None,
        "cross": None,
        "zero-shot": None,
    }


# -- the app -----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    """Oldest first: a running hybrid run (trained on en,de; evaluated on en,th), a finished mono run
    (en,de; en) and a queued cross run (en,es; de)."""
    with Store(tmp_path / "store") as store:
        running = store.create_run(
            RunConfig(name="hy-run", model="tiny", steps=100, train=("mlqa-r:en,de",), eval=("xquad-r:en,th",)),
            status="running",
        )
        store.heartbeat(running, step=9)
        done = store.create_run(
            RunConfig(
                name="mono-done", model="me5-small", sampler="mono", train=("mlqa-r:en,de",), eval=("xquad-r:en",)
            )
        )
        store.set_status(done, "running")
        store.set_status(done, "finished")
        waiting = store.create_run(
            RunConfig(
                name="cross-waiting", model="tiny", sampler="cross", train=("mlqa-r:en,es",), eval=("xquad-r:de",)
            )
        )
        for age, run_id in enumerate((waiting, done, running)):
            store.db.table("runs").update(run_id, {"created_at": DEMO_NOW - 60 * age})
        store.db.table("runs").update(running, {"host": "another-host"})  # holds the slot: nothing starts
        yield store


def ids(store: Store, *names: str) -> list[str]:
    by_name = {run["name"]: run["id"] for run in store.list_runs()}
    return [by_name[name] for name in names]


def test_filter_by_field_combines_terms_says_when_nothing_matches_and_escape_clears(store):
    running, done, waiting = ids(store, "hy-run", "mono-done", "cross-waiting")

    async def scenario(app, pilot):
        table, box = app.screen.query_one(RunsTable), app.screen.query_one("#filter", Input)
        empty = app.screen.query_one("#runs-empty", Static)
        for text, expected in (
            ("status:running", [running]),
            ("sampler:mono", [done]),
            ("model:me5", [done]),
            ("lang:th", [running]),  # evaluated on th
            ("lang:es", [waiting]),  # trained on es
            ("lang:de", [waiting, done, running]),  # evaluated on de / trained on de
            ("lang:d", []),  # a language is matched whole
            ("lang:de sampler:cross", [waiting]),
            ("lang:en status:finished", [done]),
            ("tiny status:queued", [waiting]),
            ("run", [running]),  # a free word: the name
        ):
            box.value = text
            await wait_until(pilot, lambda expected=expected: shown(table) == expected, f"the runs of {text!r}")
            assert empty.display == (not expected)
        box.value = "status:runing"
        await wait_until(pilot, lambda: empty.display, "the empty result explained")
        assert text_of(empty) == "no run matches status:runing — fields: status: sampler: model: lang:"
        await pilot.press("slash", "escape")  # in the filter: cleared and left
        assert box.value == "" and table.has_focus and len(shown(table)) == 3 and not empty.display
        await pilot.press("slash", *"mono", "enter")
        assert table.has_focus and shown(table) == [done]
        await pilot.press("escape")  # in the table: cleared too
        assert box.value == "" and len(shown(table)) == 3

    drive(store.path, scenario, refresh_s=QUIET)


def test_delete_names_the_runs_it_deletes_and_leaves_hidden_marked_runs_alone(store):
    running, done, waiting = ids(store, "hy-run", "mono-done", "cross-waiting")

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        await pilot.press("space", "down", "space")  # cross-waiting and mono-done marked
        assert table.marked == [waiting, done]
        await pilot.press("slash", *"status:queued", "enter")  # hides mono-done
        assert shown(table) == [waiting]
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        question = text_of(app.screen.query_one("#confirm-question", Static))
        detail = text_of(app.screen.query_one("#confirm-detail", Static))
        assert question.startswith("delete 1 run(s)")
        assert detail.splitlines() == [
            f"{waiting}  cross-waiting",
            "1 marked run(s) hidden by the filter are left alone",
        ]
        await pilot.press("y")
        await wait_until(pilot, lambda: not shown(table), "the shown marked run deleted")
        assert store.get_run(done)["status"] == "finished" and table.marked == [done]
        await pilot.press("escape", "d")  # nothing hidden now: the marked run, not the cursor's
        assert app.screen.query_one("#confirm-detail", Static).render().plain == f"{done}  mono-done"
        await pilot.press("n")
        await pilot.press("slash", *"status:running", "enter", "d")  # marks all hidden: the cursor's run
        assert text_of(app.screen.query_one("#confirm-detail", Static)).splitlines() == [
            f"{running}  hy-run",
            "1 marked run(s) hidden by the filter are left alone",
        ]
        await pilot.press("n")

    drive(store.path, scenario, refresh_s=QUIET)


def test_reverse_sort_clear_marks_and_the_theme_kept_in_the_store(store):
    running, done, waiting = ids(store, "hy-run", "mono-done", "cross-waiting")

    async def scenario(app, pilot):
        screen, table = app.screen, app.screen.query_one(RunsTable)
        assert shown(table) == [waiting, done, running] and screen.sub_title.endswith("newest first")
        await pilot.press("S")
        assert shown(table) == [running, done, waiting] and screen.sub_title.endswith("oldest first")
        await pilot.press("s")  # the next order, in its usual direction
        assert shown(table) == [waiting, running, done] and screen.sub_title.endswith("name a→z")
        await pilot.press("S")
        assert shown(table) == [done, running, waiting] and screen.sub_title.endswith("name z→a")
        await pilot.press("space", "up", "space")  # the cursor followed cross-waiting to the last row
        assert len(table.marked) == 2
        await pilot.press("U")
        assert table.marked == [] and "▶" not in str(table.get_row_at(0)[0])
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: launcher.settings(store.path).get("theme") == "textual-light", "the theme kept")

    drive(store.path, scenario, refresh_s=QUIET)

    async def restarted(app, pilot):
        assert app.theme == "textual-light"

    drive(store.path, restarted, refresh_s=QUIET)


def test_status_column_fits_the_last_step_so_a_live_status_is_never_cut(store):
    running = ids(store, "hy-run")[0]

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        width = table.columns["status"].width
        assert width == len("running 100/100")
        for step in (10, 99, 100):
            store.heartbeat(running, step=step)
            await wait_until(
                pilot, lambda step=step: str(table.get_cell(running, "status")) == f"running {step}/100", f"step {step}"
            )
            assert table.columns["status"].width == width  # the column never changed under the cell
            assert len(status_text(store.get_run(running))) <= width

    drive(store.path, scenario, size=(80, 24))


def test_80_columns_tell_grid_runs_apart_and_keep_every_main_key(demo):
    add_grid_runs("store")

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: table.row_count == 9, "the grid runs listed")
        names = [str(table.get_cell(run_id, "name")) for run_id in shown(table)[:4]]
        assert len(set(names)) == 4 and all(name.endswith(("seed 1", "seed 2")) for name in names)
        columns = [column.key.value for column in table.ordered_columns]
        assert columns == ["name", "sampler", "status", "mono", "cross", "multi", "rank_distance", "age"]
        assert sum(column.get_render_width(table) for column in table.ordered_columns) <= 80
        assert str(table.get_cell(shown(table)[0], "age")) == "10m"
        keys = {key.key: key for key in app.screen.query(FooterKey)}
        wanted = ("n", "space", "m", "slash", "s", "c", "r", "d", "e", "g", "q", "question_mark")
        assert set(wanted) <= set(keys)
        for key in wanted:  # every one of them whole on the screen
            region = keys[key].region
            assert region.width > 0 and region.right <= 80 and region.bottom <= 24, key

    async def at_120(app, pilot):
        table = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: table.row_count == 9, "the grid runs listed")
        assert str(table.get_cell(shown(table)[0], "name")) == GRID_NAMES[-1]  # room for whole names
        keys = list(app.screen.query(FooterKey))
        assert {key.region.y for key in keys} == {39} and max(key.region.right for key in keys) <= 120  # one line

    drive("store", scenario, size=(80, 24), refresh_s=QUIET)
    drive("store", at_120, size=(120, 40), refresh_s=QUIET)


def test_screenshot_from_the_palette_lands_in_the_store_without_a_downloads_folder(store, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/Downloads
    exports = store.path / "exports"

    async def scenario(app, pilot):
        await pilot.press("ctrl+p", *"screenshot")
        await settle(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: exports.is_dir() and any(exports.glob("*.svg")), "the screenshot saved")
        await wait_until(
            pilot, lambda: any(str(exports) in str(n.message) for n in app._notifications), "where it went, told"
        )
        assert isinstance(app.screen, RunsScreen)

    drive(store.path, scenario, refresh_s=QUIET)


# -- snapshots ---------------------------------------------------------------------------------


async def filtered(pilot, text: str) -> None:
    """The filter typed in one go (typing key by key shows the same), then left with enter."""
    await open_runs(pilot)
    await pilot.press("slash")
    pilot.app.screen.query_one("#filter", Input).value = text
    await pilot.press("enter")
    await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).has_focus, f"the filter {text!r}")


def test_snapshot_filtered(demo, snap_compare, size):
    async def run_before(pilot):
        await filtered(pilot, "sampler:hybrid status:finished")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_snapshot_empty_filter_result(demo, snap_compare, size):
    async def run_before(pilot):
        await filtered(pilot, "status:runing")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_snapshot_delete_question_with_marked_and_hidden_runs(demo, snap_compare, size):
    async def run_before(pilot):
        await open_runs(pilot)
        await pilot.press(*["down"] * row_of("hybrid-a0.5"), "space", "down", "space")  # and mono-baseline
        await pilot.press("slash", *"a0.5", "enter", "d")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_snapshot_long_similar_names(demo, snap_compare, size):
    add_grid_runs("store")

    async def run_before(pilot):
        await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).row_count == 9, "the grid runs listed")

    assert snap_compare(app(), terminal_size=size, run_before=run_before)


def test_the_theme_is_kept_beside_the_other_settings(tmp_path):
    """settings.json also holds max_parallel: keeping the theme keeps it."""
    with Store(tmp_path / "store") as store:
        launcher.set_max_parallel(store, 3)
        launcher.keep_settings(store.path, theme="textual-light")
        assert json.loads((store.path / "settings.json").read_text()) == {"max_parallel": 3, "theme": "textual-light"}
