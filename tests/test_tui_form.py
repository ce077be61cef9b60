"""The new-run form: the CLI's checks and warnings before launch, every option a researcher
changes, focus and Escape, languages marked without colour, the last launch remembered, and
``N`` cloning a run into the form (pilot tests on real stores; a launched run waits queued
behind a run on another host, so no worker trains). Its snapshots at 80x24 and 160x48 live in
tests/__snapshots__/test_tui_form/."""

from __future__ import annotations

import json

import pytest
import test_tui_snapshots as snapshots
from test_tui import hold_the_slot
from test_tui_snapshots import app, open_runs, row_of, until
from textual.widgets import Input, Select, SelectionList, Static
from tui_fixtures import drive, new_run_form, wait_until

from hybtui.config import RunConfig
from hybtui.data.checks import run_warnings
from hybtui.errors import HybtuiError
from hybtui.modeling import precision as precisions
from hybtui.modeling.registry import check_device, unknown_model
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.tui.screens.confirm import ConfirmScreen
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.new_run_fields import REMEMBERED, clone_name, unshown
from hybtui.tui.screens.runs import RunsScreen
from hybtui.tui.widgets.runs_table import RunsTable

#: The snapshot tests' demo store (cwd: its directory).
demo = snapshots.demo
#: A check of the defaults loads mlqa-r; the first one in a process also imports the data stack.
CHECK_S = 60


def message_of(screen) -> str:
    return str(screen.query_one("#form-message", Static).content)


def checked(screen) -> bool:
    """The form as it now stands has been checked (ready, or refused)."""
    text = message_of(screen)
    return text.startswith("ready") or screen.query_one("#form-message", Static).has_class("error")


def cli_error(check) -> str:
    with pytest.raises(HybtuiError) as refused:
        check()
    return str(refused.value)


async def set_values(pilot, screen, **values: str) -> None:
    """Type into the form's inputs, then wait for the check of the form as it now stands."""
    for field, value in values.items():
        screen.query_one(f"#{field}", Input).value = value
    await pilot.pause()
    await wait_until(pilot, lambda: checked(screen), f"the form checked with {values}", CHECK_S)


def test_the_form_focuses_the_name_refuses_what_the_cli_refuses_and_warns_as_it_warns(
    tmp_path, shared_data, monkeypatch
):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))

    async def scenario(app, pilot):
        screen, _ = await new_run_form(pilot)
        assert app.focused is screen.query_one("#name", Input)
        await pilot.press("tab")
        assert app.focused is screen.query_one("#model", Select)  # Tab follows the screen
        await wait_until(pilot, lambda: checked(screen), "the defaults checked", CHECK_S)
        assert message_of(screen).startswith("ready")
        await set_values(pilot, screen, device="tpu")
        assert message_of(screen) == cli_error(lambda: check_device("tpu"))
        assert screen.query_one("#launch").disabled
        await set_values(pilot, screen, device="auto", **{"model-path": "tinyy"})
        assert message_of(screen) == str(unknown_model("tinyy"))
        assert screen.query_one("#launch").disabled
        screen.query_one("#model-path", Input).value = ""  # the warnings of a run the CLI records
        screen.query_one("#train-bench", Select).value = "xquad-r"  # evaluated on xquad-r too
        await set_values(pilot, screen, steps="40", warmup_steps="100", eval_every="10", checkpoint_every="20")
        config = screen._config()
        assert (config.warmup_steps, config.eval_every, config.checkpoint_every) == (100, 10, 20)
        warnings = run_warnings(config)
        assert len(warnings) == 2 and "never reaches --lr" in warnings[0] and "both use xquad-r" in warnings[1]
        assert message_of(screen) == "; ".join(
            ["ready: me5-small, hybrid, 40 steps", *(f"warning: {w}" for w in warnings)]
        )
        assert screen.query_one("#form-message", Static).has_class("warning")
        assert not screen.query_one("#launch").disabled  # a warning does not refuse the run
        assert screen.query_one("#precision", Select).value == "auto"  # the default
        monkeypatch.setenv("HYBTUI_CPU_FLAGS", "avx2")  # a CPU without native bf16 refuses bf16, as the CLI does
        screen.query_one("#precision", Select).value = "bf16"
        await set_values(pilot, screen, warmup_steps="10", validation_fraction="0.1")
        assert message_of(screen) == cli_error(lambda: precisions.check("bf16", "cpu"))
        assert "--precision bf16: this CPU has no AVX512-BF16 or AMX" in message_of(screen)
        assert screen.query_one("#launch").disabled
        monkeypatch.setenv("HYBTUI_CPU_FLAGS", "avx2 amx_bf16")
        await set_values(pilot, screen, warmup_steps="11")
        assert screen._config().precision == "bf16" and screen._config().validation_fraction == 0.1
        assert "never reaches" not in message_of(screen) and "both use xquad-r" in message_of(screen)

    drive(tmp_path / "store", scenario, size=(120, 40))


def test_the_cli_records_the_run_with_the_warnings_the_form_shows(tmp_path, shared_data):
    from typer.testing import CliRunner

    from hybtui.cli.app import app as cli

    with Store(tmp_path / "store") as store:
        hold_the_slot(store)  # the recorded run waits queued: no worker trains
    args = ["train", "--detach", "--model", "tiny", "--train", "xquad-r:en,de", "--eval", "xquad-r:en", "--steps", "3"]
    args += ["--batch-size", "8", "--gpus", "0", "--store", str(tmp_path / "store"), "--data-dir", str(shared_data)]
    proc = CliRunner().invoke(cli, args)
    assert proc.exit_code == 0, proc.output
    with Store(tmp_path / "store") as store:
        warnings = run_warnings(store.get_run(proc.stdout.strip()).run_config())
    assert len(warnings) == 2 and proc.stderr == "".join(f"hybtui: warning: {w}\n" for w in warnings)


def test_escape_discards_an_unchanged_form_at_once_and_asks_for_a_changed_one_with_languages_marked(
    tmp_path, shared_data, monkeypatch
):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))

    async def scenario(app, pilot):
        await new_run_form(pilot)
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        screen, _ = await new_run_form(pilot)
        await pilot.press(*"sweep")
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.screen is screen and screen.query_one("#name", Input).value == "sweep"
        languages = screen.query_one("#train-langs", SelectionList)  # chosen or not, told without colour
        languages.deselect("de")
        await pilot.pause()
        lines = [languages.render_line(y).text for y in range(3)]
        assert lines[0].startswith("▐✓▌ ar") and lines[1].startswith("▐ ▌ de") and lines[2].startswith("▐✓▌ en")
        assert languages.size.height == languages.option_count == 7  # no inner scrolling
        await pilot.press("escape", "y")
        assert isinstance(app.screen, RunsScreen)

    drive(tmp_path / "store", scenario, size=(80, 24))


CLONED = RunConfig(
    name="sweep",
    model="tiny",
    sampler="cross",
    train=("mlqa-r:de,en",),
    eval=("xquad-r:en,th",),
    steps=7,
    lr=1e-4,
    warmup_steps=3,
    eval_every=2,
    checkpoint_every=5,
    precision="bf16",
    symmetric=True,  # not in the form: kept from the run
    seed=3,
)


def test_a_clone_opens_the_form_on_the_runs_configuration_and_launches_a_new_run_remembered_next_time(
    tmp_path, shared_data, monkeypatch
):
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    monkeypatch.setenv("HYBTUI_CPU_FLAGS", "avx512_bf16")  # the clone's bf16 passes the check on any CPU
    with Store(tmp_path / "store") as store:
        hold_the_slot(store)  # the launched run waits queued: no worker trains
        source = store.create_run(CLONED, name="sweep")  # queued behind the slot, as the clone will be

    async def scenario(app, pilot):
        table = app.screen.query_one(RunsTable)
        table.move_cursor(row=table.get_row_index(source))
        await pilot.press("N")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), "the form of the clone")
        screen = app.screen
        assert screen.query_one("#name", Input).value == "sweep-2" and screen.sub_title == f"new run like {source}"
        await wait_until(pilot, lambda: checked(screen), "the clone checked", CHECK_S)
        data_dir = str(shared_data.resolve())
        assert screen._config() == CLONED.replace(name="sweep-2", data_dir=data_dir)
        await set_values(pilot, screen, steps="9", gpus="0")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewRunScreen), "the launched run's page", 30)
        with Store(tmp_path / "store") as db:
            (launched,) = [run for run in db.list_runs() if run.name == "sweep-2"]
            assert launched.status == "queued" and launched.id != source
            assert launched.run_config() == CLONED.replace(name="sweep-2", steps=9, data_dir=data_dir)
        kept = launcher.settings(tmp_path / "store")[REMEMBERED]
        assert kept["steps"] == 9 and "name" not in kept and json.dumps(kept)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), "the run list")
        fresh, _ = await new_run_form(pilot)
        assert fresh.query_one("#name", Input).value == ""  # a new run, not the last one's name
        assert fresh.query_one("#steps", Input).value == "9" and fresh.query_one("#precision", Select).value == "bf16"
        assert fresh.query_one("#model", Select).value == "tiny"

    drive(tmp_path / "store", scenario, size=(100, 30))


def test_clone_names_and_what_the_form_cannot_hold():
    assert [clone_name(n) for n in ("sweep", "sweep-2", "a-b-9", None)] == ["sweep-2", "sweep-3", "a-b-10", None]
    assert unshown(CLONED) == []
    assert unshown(RunConfig(train=("pairs.jsonl", "mlqa-r:de,en"), eval=("xquad-r", "mlqa-r"))) == [
        "pairs.jsonl",
        "mlqa-r",
    ]
    assert run_warnings(RunConfig(steps=0, warmup_steps=100)) == []  # zero-shot: no schedule to warm up


# ----- snapshots (80x24 and 160x48; the fresh form is test_tui_snapshots.py's test_new_run_form):
# re-record with --snapshot-update and look at them -----


async def open_form(pilot) -> NewRunScreen:
    await open_runs(pilot)
    await pilot.press("n")
    screen = pilot.app.screen
    await until(pilot, lambda: message_of(screen).startswith("ready"), "the form's check", CHECK_S)
    return screen


@pytest.fixture(params=list(snapshots.SIZES))
def size(request) -> tuple[int, int]:
    """Every snapshot at each size (a snapshot of a deselected size would count as unused and fail the run)."""
    return snapshots.SIZES[request.param]


@pytest.fixture
def gpus(monkeypatch):
    monkeypatch.setenv("HYBTUI_GPUS", "0,1")  # the host's GPUs, whatever the machine running the test


def test_form_with_a_check_error(demo, gpus, snap_compare, size):
    async def refused(pilot):
        screen = await open_form(pilot)
        screen.query_one("#device", Input).value = "tpu"
        await until(pilot, lambda: message_of(screen).startswith("--device: unknown"), "the refusal")

    assert snap_compare(app(), terminal_size=size, run_before=refused)


def test_form_cloned_from_a_run(demo, gpus, snap_compare, size):
    async def cloned(pilot):
        await open_runs(pilot)
        await pilot.press(*["down"] * row_of("cross-en-de"), "N")
        await until(pilot, lambda: isinstance(pilot.app.screen, NewRunScreen), "the clone's form")
        screen = pilot.app.screen
        await until(pilot, lambda: message_of(screen).startswith("ready"), "the clone checked", CHECK_S)

    assert snap_compare(app(), terminal_size=size, run_before=cloned)


def test_form_discard_question(demo, gpus, snap_compare, size):
    async def asked(pilot):
        screen = await open_form(pilot)
        await pilot.press(*"sweep")
        await until(pilot, lambda: message_of(screen).startswith("ready"), "the changed form checked", CHECK_S)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")

    assert snap_compare(app(), terminal_size=size, run_before=asked)
