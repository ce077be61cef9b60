"""Precision `auto`: bf16 autocast where the hardware computes bf16 natively (CPU flags, a CUDA
device's capability), fp32 elsewhere; `bf16` on hardware without it refused before anything is
recorded; old configurations (`bf16: true/false`) keep their meaning; a run records what it used;
and a bf16 evaluation of the tiny model agrees with fp32 within 0.002 mAP on every headline figure."""

from __future__ import annotations

import json
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import hybtui
from typer.testing import CliRunner

from hybtui.cli.app import app
from hybtui.config import RunConfig
from hybtui.data import lareqa
from hybtui.errors import HybtuiError
from hybtui.evaluation import evaluate
from hybtui.modeling import precision as precisions
from hybtui.results import headline
from hybtui.runs.store import Store

TINY_RUN = ["--model", "tiny", "--train", "mlqa-r:en,de,es", "--batch-size", "8"]


@pytest.fixture
def flags(monkeypatch):
    """Set this CPU's flags as /proc/cpuinfo would list them."""
    return lambda text: monkeypatch.setenv(precisions.FLAGS_ENV, text)


@pytest.mark.parametrize(
    ("cpu", "used", "why"),
    [
        ("fpu avx2 avx512f avx512_bf16", "bf16", "auto: avx512_bf16"),
        ("fpu,amx_tile,amx_bf16", "bf16", "auto: amx_bf16"),
        ("fpu avx2 avx512f avx512_vnni", "fp32", "auto: this CPU has no AVX512-BF16 or AMX"),
        ("", "fp32", "auto: this CPU has no AVX512-BF16 or AMX"),
    ],
)
def test_auto_on_a_cpu_is_bf16_only_where_its_flags_say_native_bf16(flags, cpu, used, why):
    flags(cpu)
    resolved = precisions.resolve("auto", "cpu")
    assert (resolved.used, resolved.why, resolved.bf16) == (used, why, used == "bf16")
    assert resolved.event() == f"precision {used} ({why})"
    assert precisions.used([{"message": "device cpu"}, {"message": resolved.event()}]) == f"{used} ({why})"


def test_fp32_is_kept_and_bf16_refused_without_native_bf16(flags):
    flags("avx2")
    assert precisions.resolve("fp32", "cpu") == precisions.Precision("fp32", "asked")
    with pytest.raises(HybtuiError, match=r"--precision bf16: this CPU has no AVX512-BF16 or AMX.*--precision auto"):
        precisions.resolve("bf16", "cpu")
    with pytest.raises(HybtuiError, match="--precision bf16: this CPU"):
        precisions.check("bf16", "cpu")
    with pytest.raises(HybtuiError, match="--precision bf16: mps is not known"):
        precisions.resolve("bf16", "mps")
    precisions.check("bf16", "cpu", here=False)  # a cluster's node is judged by its own worker
    flags("avx512_bf16")
    assert precisions.resolve("bf16", "cpu").bf16 and precisions.resolve("fp32", "cpu").used == "fp32"
    precisions.check("bf16", "cpu")
    with pytest.raises(HybtuiError, match="--precision must be one of auto, fp32, bf16"):
        precisions.check("fp16", "cpu")


def test_the_real_cpuinfo_is_read_when_not_overridden(monkeypatch):
    monkeypatch.delenv(precisions.FLAGS_ENV, raising=False)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    listed = next(line.partition(":")[2].split() for line in text.splitlines() if line.startswith("flags"))
    assert precisions.cpu_flags() == frozenset(listed)
    assert precisions.cpu_bf16()[0] == any(flag in listed for flag in precisions.CPU_BF16_FLAGS)


@pytest.mark.parametrize("native", [True, False])
def test_a_cuda_device_is_judged_by_torchs_native_bf16_query_on_that_device(monkeypatch, native):
    asked = []

    @contextmanager
    def on_device(index):
        asked.append(index)
        yield

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "device", on_device)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert precisions.resolve("auto", "cuda:1").used == ("bf16" if native else "fp32")
    assert asked == [1, False]  # that device, emulation not counted
    if native:
        assert precisions.resolve("bf16", "cuda:1").bf16
    else:
        with pytest.raises(HybtuiError, match="--precision bf16: cuda:1 has no native bf16"):
            precisions.resolve("bf16", "cuda:1")


def test_before_a_run_a_gpu_is_judged_through_nvml(monkeypatch):
    """bf16 on a host with a pre-Ampere GPU is refused from NVML's compute capability (the
    CUDA runtime is not started before the queue hands out GPUs)."""
    capability = {0: (9, 0), 1: (7, 5)}
    nvml = SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(capability),
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetCudaComputeCapability=lambda handle: capability[handle],
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with pytest.raises(HybtuiError, match="GPU 1 has compute capability 7.5, below 8.0"):
        precisions.check("bf16", "cuda:0")
    precisions.check("auto", "cuda:0")  # auto never refuses
    capability[1] = (8, 0)
    precisions.check("bf16", "cuda")


def test_configurations_stored_before_precision_keep_their_meaning(tmp_path):
    assert RunConfig().precision == "auto"
    assert RunConfig.from_dict({"bf16": True}).precision == "bf16"
    assert RunConfig.from_dict({"bf16": False}).precision == "fp32"  # an old default run stays fp32
    assert RunConfig.from_dict({"bf16": True, "precision": "bf16"}).precision == "bf16"
    assert "bf16" not in RunConfig.from_dict({"bf16": True}).to_dict()
    with pytest.raises(HybtuiError, match="bf16 = false contradicts precision = 'bf16'"):
        RunConfig.from_dict({"bf16": False, "precision": "bf16"})
    with pytest.raises(HybtuiError, match="bf16 must be true or false"):
        RunConfig.from_dict({"bf16": "yes"})
    with pytest.raises(HybtuiError, match="--precision must be one of auto, fp32, bf16 \\(got 'fp16'\\)"):
        RunConfig(precision="fp16")
    toml = tmp_path / "old.toml"
    toml.write_text('model = "tiny"\nbf16 = true\n')
    assert RunConfig.from_file(toml).precision == "bf16"
    with Store(tmp_path / "store") as store:  # a run recorded by an older hybtui: bf16, no precision
        run_id = store.create_run(RunConfig(steps=1))
    old = {k: v for k, v in RunConfig(steps=1).to_dict().items() if k != "precision"}
    with sqlite3.connect(tmp_path / "store" / "hybtui.db") as conn:
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", [json.dumps({**old, "bf16": True}), run_id])
    with Store(tmp_path / "store") as store:
        assert store.get_run(run_id).run_config() == RunConfig(steps=1, precision="bf16")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def refused(*args: str) -> str:
    """The error a command refuses with (main() prints it as one line, exit status 2)."""
    result = invoke(*args)
    assert isinstance(result.exception, HybtuiError), result.output
    return str(result.exception)


def test_the_cli_refuses_bf16_without_native_bf16_and_records_nothing(tmp_path, shared_data, flags):
    store = tmp_path / "store"
    data = ["--data-dir", str(shared_data), "--store", str(store)]
    proc = hybtui(  # as a user sees it
        "train",
        *TINY_RUN,
        "--steps",
        "1",
        "--precision",
        "bf16",
        "--detach",
        *data,
        env_extra={precisions.FLAGS_ENV: "fpu avx2"},
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("hybtui: error: --precision bf16: this CPU has no AVX512-BF16 or AMX")
    flags("fpu avx2")
    message = refused("train", *TINY_RUN, "--precision", "fp16", *data)
    assert "--precision must be one of auto, fp32, bf16 (got 'fp16')" in message
    message = refused("reproduce", "--quick", "--model", "tiny", "--precision", "bf16", "--detach", *data)
    assert message.startswith("--precision bf16: this CPU")
    message = refused("eval", "--model", "tiny", "--eval", "xquad-r:en", "--precision", "bf16", "--device", "cpu")
    assert message.startswith("--precision bf16: this CPU")
    with Store(store) as db:
        assert db.list_runs() == [] and db.list_grids() == []


def test_bf16_evaluation_agrees_with_fp32_within_two_thousandths_on_every_headline_figure(shared_data, tiny_encoder):
    bench = lareqa.load("xquad-r", ["en", "de", "th"], shared_data, allow_download=False).max_queries(60)
    fp32, bf16 = (
        headline([r.as_dict() for r in evaluate.evaluate(tiny_encoder, [bench], bf16=b)]) for b in (False, True)
    )
    maps = {key: value for key, value in fp32.items() if key[2] == "map"}
    assert {key[1] for key in maps} == {"mono", "cross", "multi"}
    for key, value in maps.items():
        assert abs(bf16[key] - value) <= 0.002, (key, value, bf16[key])


def small_beir(root: Path) -> Path:
    """A BEIR folder of 20 documents: the run's evaluation takes no time."""
    (root / "qrels").mkdir(parents=True)
    for name, kind in (("corpus", "answer"), ("queries", "question")):
        rows = (json.dumps({"_id": f"{name[0]}{i}", "title": "", "text": f"{kind} {i}"}) for i in range(20))
        (root / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tc{i}\t1\n" for i in range(20))
    )
    return root


def test_a_run_records_the_precision_it_used_and_runs_show_prints_it(tmp_path, shared_data, flags):
    """A zero-shot run (0 steps: the model evaluated as it is), resolved `auto` on a bf16 CPU."""
    flags("fpu avx512_bf16")
    config = tmp_path / "run.toml"
    config.write_text("max_length = 32\nvalidation_fraction = 0.0\n")
    store = ["--store", str(tmp_path / "store")]
    beir = f"beir:{small_beir(tmp_path / 'beir')}:en"
    args = ("train", "--config", str(config), *TINY_RUN, "--eval", beir, "--steps", "0", "--data-dir", str(shared_data))
    result = invoke(*args, *store, "--json")
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["id"]
    with Store(tmp_path / "store") as db:
        assert db.get_run(run_id).config["precision"] == "auto"  # asked for; the event says what was used
        assert "precision bf16 (auto: avx512_bf16)" in [e["message"] for e in db.events(run_id)]
        assert db.results(run_id)  # evaluated under bf16 autocast
    shown = invoke("runs", "show", run_id, *store)
    assert "· precision bf16 (auto: avx512_bf16)" in " ".join(shown.stdout.split("created")[0].split())
    shown = json.loads(invoke("runs", "show", run_id, "--json", *store).stdout)
    assert shown["run"]["precision"] == "bf16 (auto: avx512_bf16)"
