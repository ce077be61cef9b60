"""`hybtui reproduce`: the grid, its report, and bad input."""

import json
import math

import pytest
from tui_fixtures import record_grid

from hybtui.errors import HybtuiError
from hybtui.reporting.grid_report import build_report, to_markdown
from hybtui.runs import grid as reproduce
from hybtui.runs.store import Store
from tests.test_runs import hybtui, store_dir  # noqa: F401 - fixture


def test_quick_grid_runs_end_to_end_and_reports_every_cell(store_dir):  # noqa: F811
    proc = hybtui(
        "reproduce",
        "--quick",
        "--model",
        "tiny",
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--eval",
        "xquad-r:en,ru",
        "--max-parallel",
        "2",
        "--json",
    )
    rep = json.loads(proc.stdout)
    assert "expected wall time" in proc.stderr
    assert [r["status"] for r in rep["runs"]] == ["finished"] * 4
    assert [r["label"] for r in rep["runs"]] == ["zero-shot", "X-X-mono", "X-Y", "hybrid α=0.5"]
    bench = rep["benchmarks"]["xquad-r"]
    for label, row in bench["table1"].items():
        for heading, cell in row.items():
            assert cell["n"] == 1 and math.isfinite(cell["mean"]), (label, heading)
    assert set(bench["deltas"]) == {"hybrid α=0.5 − zero-shot", "hybrid α=0.5 − X-X-mono", "hybrid α=0.5 − X-Y"}
    assert bench["languages"]["en"]["seen"] == "seen" and bench["languages"]["ru"]["seen"] == "unseen"
    assert all(
        math.isfinite(v) for info in bench["languages"].values() for s in info["samplers"].values() for v in s.values()
    )
    grid_dir = store_dir / "grids" / rep["grid"]
    assert json.loads((grid_dir / "report.json").read_text()) == rep
    markdown = (grid_dir / "report.md").read_text()
    assert "| hybrid α=0.5 |" in markdown and "ru†" in markdown
    with Store(store_dir) as store:
        baseline = store.get_run(rep["runs"][0]["run_id"])
        trained = [store.get_run(r["run_id"]) for r in rep["runs"][1:]]
        assert baseline["config"]["steps"] == 0 and not store.artifacts(baseline["id"], "checkpoint")
        # the sampler is the only difference between the trained runs
        for key in ("steps", "batch_size", "lr", "warmup_steps", "seed", "train", "eval", "model"):
            assert len({json.dumps(run["config"][key]) for run in trained}) == 1, key
        assert store.results(trained[0]["id"])[0]["step"] == 2
    listing = json.loads(hybtui("grids", "ls", "--json").stdout)
    assert listing[0]["id"] == rep["grid"] and listing[0]["done"] and listing[0]["finished"] == 4


def test_sweep_plan_has_one_baseline_and_every_sampler_per_seed(shared_data):
    grid = reproduce.plan(quick=True, model="tiny", alphas=[0.3, 0.7], seeds=[1, 2], data_dir=shared_data)
    assert [c.label for c in grid.cells] == ["zero-shot"] + ["X-X-mono", "X-Y", "hybrid α=0.3", "hybrid α=0.7"] * 2
    assert [c.seed for c in grid.configs] == [1, 1, 1, 1, 1, 2, 2, 2, 2]
    assert grid.configs[0].steps == 0
    assert {c.steps for c in grid.configs[1:]} == {reproduce.QUICK.steps}
    assert [c.alpha for c in grid.configs[1:] if c.sampler == "hybrid"] == [0.3, 0.7, 0.3, 0.7]
    default = reproduce.plan(quick=True, model="tiny", alphas=[0.5], seeds=[42], data_dir=shared_data)
    assert 0 < default.expected_seconds() < 15 * 60 < grid.expected_seconds()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--alpha", "1.5"], "--alpha must be within [0, 1]"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--seed", "3", "--seed", "3"], "must not repeat"),
        (["--model", "xlm-robreta-base"], "did you mean xlm-roberta-base"),
        (["--eval", "xquad-r:xx"], "xx"),
        (["--batch-size", "4000"], "4000"),
    ],
)
def test_bad_input_is_refused_before_anything_is_queued(store_dir, args, message):  # noqa: F811
    proc = hybtui("reproduce", "--quick", "--model", "tiny", *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    with Store(store_dir) as store:
        assert store.list_runs() == [] and store.list_grids() == []


def test_report_averages_seeds_with_spread_and_takes_deltas(tmp_path):
    with Store(tmp_path / "store") as store:
        grid_id, _ = record_grid(store, per_language=False)
        rep = build_report(store, grid_id)
    table = rep["benchmarks"]["xquad-r"]["table1"]
    assert table["X-X-mono"]["mono mAP"] == {"mean": 0.5, "sd": None, "n": 1}
    assert table["hybrid α=0.5"]["mono mAP"]["mean"] == pytest.approx(0.7)
    assert table["hybrid α=0.5"]["mono mAP"]["sd"] == pytest.approx(math.sqrt(0.02))
    deltas = rep["benchmarks"]["xquad-r"]["deltas"]
    assert deltas["hybrid α=0.5 − zero-shot"]["mono mAP"] == pytest.approx(0.3)
    assert deltas["hybrid α=0.5 − X-X-mono"]["cross mAP"] == pytest.approx(0.1)
    assert rep["status"]["X-X-mono"] == ["queued", "deleted"]
    assert "X-X-mono seed 2: deleted" in to_markdown(rep)


def test_unknown_grid_id_is_a_clear_error(tmp_path):
    with Store(tmp_path / "store") as store, pytest.raises(HybtuiError, match="no grid with id 'nope'"):
        store.get_grid("nope")
