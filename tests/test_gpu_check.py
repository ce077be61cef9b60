"""The prepared GPU check (benchmarks/gpu_check.py): its CPU dry run, as CI runs it, goes through
every measurement — a real queued run to `finished`, training and encoding steps — and writes
its JSON and Markdown where it is told; the peaks behind MFU come from the device's name."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402  (benchmarks/ is not a package)


def test_dry_run_measures_everything_and_writes_where_told(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check-cpu.json", "gpu_check-cpu.md"]
    result = json.loads((out / "gpu_check-cpu.json").read_text())
    assert result["device"] == "cpu" and result["command"] == "python benchmarks/gpu_check.py --dry-run"
    queue = result["queue"]
    assert queue["status"] == "finished" and queue["metrics"] > 0 and queue["results"] > 0
    assert "--device cpu --precision auto --detach" in queue["command"] and queue["wall_s"] > 0
    shape = result["encoder"]["shape"]
    assert (shape["layers"], shape["hidden"]) == (2, 128)
    for precision in ("fp32", "bf16"):
        train = result["encoder"]["train"][precision]
        assert train["pairs_per_s"] > 0 and train["achieved_tflops"] > 0 and train["mfu"] is None
        assert result["encoder"]["encode"][precision]["texts_per_s"] > 0
    assert result["peak_tflops"]["bf16"] is None and "MFU not computed" in result["peak_tflops"]["source"]
    table = (out / "gpu_check-cpu.md").read_text()
    assert "| MFU | n/a | n/a |" in table and "Queue: tiny bf16 run `finished`" in table
    assert "queue: run" in proc.stdout and "train bf16" in proc.stdout  # progress as it goes


@pytest.mark.parametrize(
    ("name", "peaks"),
    [
        ("NVIDIA H200", (989.0, 67.0)),
        ("NVIDIA H100 80GB HBM3", (989.0, 67.0)),
        ("NVIDIA H100 PCIe", (756.0, 51.0)),
        ("NVIDIA A100-SXM4-80GB", (312.0, 19.5)),
        ("NVIDIA GeForce GTX 1080", None),
    ],
)
def test_peaks_by_device_name(name, peaks):
    assert gpu_check.peak_tflops(name) == peaks


def test_peak_override_wins_and_unknown_devices_get_no_mfu():
    assert gpu_check.peaks_for("NVIDIA H200", [500.0, 50.0])[0] == (500.0, 50.0)
    assert gpu_check.peaks_for("NVIDIA H200", None)[0] == (989.0, 67.0)
    assert gpu_check.peaks_for("Some GPU", None) == (
        None,
        "none known for Some GPU: MFU not computed (give --peak-tflops BF16 FP32)",
    )
