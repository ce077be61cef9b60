"""The GPU pool and telemetry through NVML's binding, on a machine with no GPU: a stand-in
`pynvml` (tests/fake_nvml.py) reports four GPUs."""

import shutil
import sys
from pathlib import Path

import pytest

from hybtui.errors import HybtuiError
from hybtui.runs import gpus

FAKE_NVML = Path(__file__).with_name("fake_nvml.py")


def install_fake_nvml(directory: Path) -> Path:
    """``directory/pynvml.py``: put ``directory`` on sys.path or PYTHONPATH to use it."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(FAKE_NVML, directory / "pynvml.py")
    return directory


@pytest.fixture
def fake_nvml(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(install_fake_nvml(tmp_path / "nvml")))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    for name in ("HYBTUI_GPUS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)


def test_the_pool_is_what_nvml_reports_restricted_by_cuda_visible_devices(fake_nvml):
    assert gpus.pool() == ("0", "1", "2", "3")
    assert gpus.pool({"CUDA_VISIBLE_DEVICES": "2,GPU-fake-3,7"}) == ("2", "3")  # ids or UUIDs; 7 is no GPU
    assert gpus.pool({"CUDA_VISIBLE_DEVICES": ""}) == ()
    assert gpus.pool({"HYBTUI_GPUS": "5,6", "CUDA_VISIBLE_DEVICES": "0"}) == ("5", "6")  # declared wins
    assert gpus.default_count("auto") == gpus.default_count("cuda") == 1
    assert gpus.default_count("cpu") == 0


def test_without_nvml_there_are_no_gpus_and_no_samples(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails, as where nvidia-ml-py has no driver
    monkeypatch.delenv("HYBTUI_GPUS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.pool() == () and gpus.visible() == () and gpus.sample(("0",)) == []
    assert gpus.default_count("auto") == 0
    with pytest.raises(HybtuiError, match="this host has no GPUs that NVML reports"):
        gpus.check_count(1, "auto")


def test_a_sample_holds_each_gpus_readings_and_leaves_out_what_it_lacks(fake_nvml):
    (first, second) = gpus.sample(("1", "GPU-fake-2"))
    assert (first["gpu"], first["utilization"], first["memory_used"], first["memory_total"]) == ("1", 41, 1001, 81920)
    assert first["power"] == pytest.approx(250.001) and first["temperature"] is None
    assert second["gpu"] == "GPU-fake-2" and second["utilization"] == 42
    assert gpus.sample(("9",)) == []  # not a GPU NVML knows
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": "1,3"}) == ("1", "3")
    assert gpus.visible({}) == ("0", "1", "2", "3")
