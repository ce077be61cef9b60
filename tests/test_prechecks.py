"""A model or device a worker could not use is refused before anything is recorded: by
`train` (detached or not), `reproduce` and the app's new-run form, through one check
(`registry.check_model_and_device`). Each case: exit 2, one line naming the option and the
problem, and the store's logical contents unchanged (or no store at all)."""

import contextlib
import sqlite3
import subprocess
import sys

import pytest
import torch
from test_runs import hybtui
from test_tui import fill_new_run, hold_the_slot
from textual.widgets import Button, Input
from tui_fixtures import drive, new_run_form, settle, wait_until

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.modeling import encoder as models
from hybtui.modeling import registry
from hybtui.runs.store import Store
from hybtui.tui.screens.new_run import NewRunScreen

TINY = ["--train", "mlqa-r:en,de", "--eval", "xquad-r:en", "--steps", "2", "--batch-size", "8", "--max-length", "32"]


def weightless_model(tmp_path):
    """A Hugging Face model directory with its configuration but no weights."""
    directory = tmp_path / "weightless"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


def pickled_model(tmp_path):
    """A model directory whose weights are only a pickle, which hybtui never loads."""
    directory = weightless_model(tmp_path)
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x04")
    return directory


def model_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"{}")
    return path


#: (option, value or a builder of it, the error after "hybtui: error: ")
CASES = [
    ("--model", model_file, "--model: {} is a file, not a model directory"),
    ("--model", weightless_model, "--model: {} holds no model weights: no model.safetensors"),
    ("--model", pickled_model, "pytorch_model.bin is not read: hybtui loads safetensors weights only"),
    ("--model", lambda tmp_path: str(tmp_path / "missing"), "--model: model path {} does not exist"),
    ("--model", lambda _: "me5-smal", "--model: unknown model 'me5-smal'; did you mean me5-small"),
    (
        "--model",
        lambda _: "nobody/no-such-model",
        "--model: 'nobody/no-such-model' (nobody/no-such-model) is not "
        "in the local Hugging Face cache and HF_HUB_OFFLINE is set",
    ),
    ("--device", lambda _: "tpu", "--device: unknown device 'tpu' (use cpu, cuda, cuda:N, mps or auto)"),
    ("--device", lambda _: "cuda:x", "--device: unknown device 'cuda:x'"),
    pytest.param(
        "--device",
        lambda _: "cuda",
        "--device: cuda requested but CUDA is not available",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
    ),
]


def logical_contents(store) -> list[str] | None:
    """The database as SQL (its bytes move on WAL checkpoints), or None where there is none."""
    if not (store / "hybtui.db").exists():
        return None
    with contextlib.closing(sqlite3.connect(store / "hybtui.db")) as conn:
        return list(conn.iterdump())


def refused(proc, expected: str) -> None:
    """Exit 2 with exactly one line on stderr, the expected error, and nothing on stdout."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("hybtui: error: "), proc.stderr
    assert expected in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.fixture
def store_with_a_run(tmp_path, shared_data, monkeypatch):
    """A store that already holds one (queued, held) run; nothing may change it."""
    monkeypatch.setenv("HYBTUI_DATA_DIR", str(shared_data))
    path = tmp_path / "store"
    with Store(path) as store:
        hold_the_slot(store)  # so the app, open over it, starts nothing
        store.create_run(RunConfig(model="tiny", steps=2), name="queued")
    return path


@pytest.mark.parametrize("option, value, expected", CASES)
def test_train_refuses_before_recording(tmp_path, store_with_a_run, option, value, expected):
    value = value(tmp_path)
    before = logical_contents(store_with_a_run)
    for detach in (["--detach"], []):
        args = ("--model", "tiny", option, str(value), *TINY, "--store", str(store_with_a_run))
        proc = hybtui("train", *detach, *args, check=False)
        refused(proc, expected.format(value))
        assert logical_contents(store_with_a_run) == before
    fresh = tmp_path / "fresh-store"
    proc = hybtui("train", "--detach", "--model", "tiny", option, str(value), *TINY, "--store", str(fresh), check=False)
    refused(proc, expected.format(value))
    assert not fresh.exists()


@pytest.mark.parametrize("option, value, expected", [CASES[0], CASES[1], CASES[6]])
def test_reproduce_refuses_before_recording(tmp_path, store_with_a_run, option, value, expected):
    value = value(tmp_path)
    before = logical_contents(store_with_a_run)
    args = ("--model", "tiny", option, str(value), "--store", str(store_with_a_run))
    proc = hybtui("reproduce", "--quick", "--detach", *args, check=False)
    refused(proc, expected.format(value))
    assert logical_contents(store_with_a_run) == before


def test_the_check_is_torch_free_for_models_and_cpu():
    """The app checks models without loading torch: only a cuda or mps device imports it."""
    code = (
        "import sys; from hybtui.modeling import registry; registry.check_model_and_device('tiny', 'cpu'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_registered_and_local_models_pass(tmp_path):
    models.prepare_tiny()
    registry.check_model_and_device("tiny", "cpu")
    registry.check_model_and_device(str(models.checkpoint_dir("tiny")), "auto")
    with pytest.raises(HybtuiError, match="--model: .* is a file"):
        models.checkpoint_dir(str(model_file(tmp_path)))  # loading keeps the same rules


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("model-path", model_file, "--model: {} is a file, not a model directory"),
        ("model-path", weightless_model, "--model: {} holds no model weights"),
        ("device", lambda _: "tpu", "--device: unknown device 'tpu'"),
    ],
)
def test_the_app_form_refuses_and_launches_nothing(tmp_path, store_with_a_run, field, value, expected):
    value = str(value(tmp_path))
    expected = expected.format(value)
    before = logical_contents(store_with_a_run)

    async def scenario(app, pilot):
        screen, message = await new_run_form(pilot)
        assert isinstance(screen, NewRunScreen)
        fill_new_run(screen, ["en", "de"], steps="2", batch_size="8", max_length="32")
        screen.query_one(f"#{field}", Input).value = value
        await wait_until(pilot, lambda: expected in str(message.content), "the form refused", 60)
        assert message.has_class("error") and screen.query_one("#launch", Button).disabled
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert any(n.title == "cannot launch" for n in app._notifications)
        assert isinstance(app.screen, NewRunScreen)

    drive(store_with_a_run, scenario, size=(80, 24), refresh_s=0.2)
    assert logical_contents(store_with_a_run) == before
