"""Kill a real worker at every fault point (hybtui.faults) and at random moments, resume it, and
compare its record with an uninterrupted run's of the same seed (issue 12, must-show 1)."""

import os
import random
import signal
import time

import numpy as np
import pytest

from hybtui import faults
from hybtui.config import RunConfig
from hybtui.modeling import encoder as models
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.training import checkpoint as checkpoints

#: Periodic evaluations (3, 6) and checkpoints (4), then the final checkpoint and evaluation (8).
PERIODIC = {
    "model": "tiny",
    "train": ("mlqa-r:en,de,es",),
    "eval": ("xquad-r:en",),
    "steps": 8,
    "batch_size": 8,
    "max_length": 32,
    "warmup_steps": 1,
    "eval_every": 3,
    "eval_max_queries": 10,
    "final_eval_max_queries": 20,
    "checkpoint_every": 4,
    "seed": 7,
    "device": "cpu",
}
#: The default checkpoint_every 0: a resume starts from step 0.
FINAL_ONLY = {**PERIODIC, "steps": 6, "eval_every": 0, "checkpoint_every": 0}
#: Timing-dependent: compared by (key, step) only.
WALL_CLOCK_METRICS = {"pairs_per_s"}
TIMEOUT_S = 240


def config(shared_data, spec):
    return RunConfig(**spec, data_dir=str(shared_data))


def record(store, run_id):
    """What a comparison reads: metric and result rows, checkpoint records and files, the run's end."""
    run = store.get_run(run_id)
    metrics = sorted((m["key"], m["step"], m["value"]) for m in store.metrics_since(run_id))
    results = sorted(
        (
            r["step"],
            r["final"],
            r["bench"],
            r["setting"],
            r["query_lang"],
            r["doc_lang"],
            r["metric"],
            str(r["seen"]),
            r["value"],
        )
        for r in store.results(run_id, final_only=False)
    )
    run_dir = store.run_dir(run_id)
    return {
        "status": run["status"],
        "step": run["step"],
        "metrics": metrics,
        "results": results,
        "artifacts": [a["step"] for a in store.artifacts(run_id, "checkpoint")],
        "checkpoints": sorted(p.name for p in (run_dir / "checkpoints").iterdir()),
    }


def assert_same_record(got, want):
    assert (got["status"], got["step"]) == (want["status"], want["step"])
    assert [m[:2] for m in got["metrics"]] == [m[:2] for m in want["metrics"]], "no duplicate or missing step"
    values = [[m[2] for m in rec["metrics"] if m[0] not in WALL_CLOCK_METRICS] for rec in (got, want)]
    np.testing.assert_allclose(*values, atol=1e-6, rtol=0)
    assert [r[:-1] for r in got["results"]] == [r[:-1] for r in want["results"]]
    np.testing.assert_allclose([r[-1] for r in got["results"]], [r[-1] for r in want["results"]], atol=1e-6, rtol=0)
    assert got["artifacts"] == want["artifacts"] and got["checkpoints"] == want["checkpoints"]


@pytest.fixture
def store_dir(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HYBTUI_STORE", str(tmp_path / "store"))
    models.prepare_tiny()
    return tmp_path / "store"


@pytest.fixture(scope="module")
def references():
    """The uninterrupted record per configuration, computed once per module on first use."""
    return {}


@pytest.fixture
def reference(references, store_dir, shared_data):
    def get(spec_name):
        if spec_name not in references:
            with Store(store_dir.parent / f"reference-{spec_name}") as store:
                run_id = launcher.submit(store, config(shared_data, SPECS[spec_name]))
                assert launcher.wait(store, run_id, TIMEOUT_S) == "finished"
                references[spec_name] = record(store, run_id)
        return references[spec_name]

    return get


SPECS = {"periodic": PERIODIC, "final-only": FINAL_ONLY}
CHECKPOINT_STEPS = {"periodic": [4, 8], "final-only": [6]}


def start_with_fault(store, monkeypatch, cfg, fault):
    monkeypatch.setenv("HYBTUI_FAULT", fault)
    try:
        return launcher.submit(store, cfg)
    finally:
        monkeypatch.delenv("HYBTUI_FAULT")


def resume_until_finished(store, run_id, attempts=10):
    """Resume after each crash (a resume may itself be killed) until the run has finished."""
    for _ in range(attempts):
        status = launcher.wait(store, run_id, TIMEOUT_S)
        if status == "finished":
            return
        assert status == "crashed", store.get_run(run_id)["error"]
        launcher.resume(store, run_id)
    raise AssertionError(f"run {run_id} did not finish after {attempts} resumes")


# (spec, fault, the step the resume starts from)
FAULTS = [
    ("periodic", "step:7", 4),  # after the step-6 evaluation: its results are trimmed
    ("periodic", "before-flush:4", 0),
    ("periodic", "after-flush:4", 0),
    ("periodic", "checkpoint-staging:4", 0),
    ("periodic", "checkpoint-switch:4", 0),
    ("periodic", "checkpoint-switched:4", 4),  # visible before its record: the resume records it
    ("periodic", "checkpoint-prune:4", 8),
    ("periodic", "checkpoint-switch:8", 4),
    ("periodic", "final-validation", 8),  # the final checkpoint (no optimizer moments) is resumed
    ("periodic", "final-results", 8),
    ("periodic", "finished-prune", 0),  # no resume point left: from the start, nothing stale
    ("final-only", "step:4", 0),
]


#: Each case runs a worker twice (about 35 s of CPU): inside a periodic evaluation's aftermath, inside
#: a checkpoint's atomic switch and inside the final evaluation stay in the default run; the rest are slow.
DEFAULT_FAULTS = ("step:7", "checkpoint-switch:8", "final-results")


@pytest.mark.parametrize(
    ("spec", "fault", "resume_step"),
    [f if f[1] in DEFAULT_FAULTS else pytest.param(*f, marks=pytest.mark.slow) for f in FAULTS],
    ids=[f[1] for f in FAULTS],
)
def test_killed_at_a_fault_point_resumes_to_the_uninterrupted_record(
    store_dir, shared_data, monkeypatch, reference, spec, fault, resume_step
):
    want = reference(spec)
    with Store(store_dir) as store:
        run_id = start_with_fault(store, monkeypatch, config(shared_data, SPECS[spec]), fault)
        assert launcher.wait(store, run_id, TIMEOUT_S) == "crashed"
        launcher.resume(store, run_id)
        assert store.get_run(run_id)["step"] == resume_step
        assert launcher.wait(store, run_id, TIMEOUT_S) == "finished"
        assert_same_record(record(store, run_id), want)
        assert not [p for p in (store.run_dir(run_id) / "checkpoints").iterdir() if p.name.startswith(".")]


def random_fault(rng, spec):
    """Any fault point, at a step where it can fire."""
    name = rng.choice(faults.POINTS)
    if name == "step":
        return f"step:{rng.randint(1, SPECS[spec]['steps'])}"
    if name in ("before-flush", "after-flush") or name.startswith("checkpoint"):
        return f"{name}:{rng.choice(CHECKPOINT_STEPS[spec])}"
    return name


@pytest.mark.slow
def test_killed_at_random_moments_every_run_resumes_to_the_uninterrupted_record(
    store_dir, shared_data, monkeypatch, reference
):
    """≥ 30 trials: a random fault point, or a plain kill -9 of the process group after a random
    delay; each run is resumed (its resumes killed too, at random) until it has finished."""
    rng = random.Random(int(os.environ.get("HYBTUI_TRIAL_SEED", "12")))
    trials = int(os.environ.get("HYBTUI_TRIALS", "30"))
    wants = {name: reference(name) for name in SPECS}
    kills = 0
    with Store(store_dir) as store:
        for trial in range(trials):
            spec = rng.choice(list(SPECS))
            cfg = config(shared_data, SPECS[spec])
            if trial % 2:
                run_id = start_with_fault(store, monkeypatch, cfg, random_fault(rng, spec))
            else:
                run_id = launcher.submit(store, cfg)
            for _ in range(rng.randint(1, 2)):  # kill -9 the group (the first attempt, then a resume)
                time.sleep(rng.uniform(0.5, 25.0))
                run = store.get_run(run_id)
                if run["status"] == "running" and run["pgid"]:
                    try:
                        os.killpg(run["pgid"], signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                if launcher.wait(store, run_id, TIMEOUT_S) == "crashed":
                    launcher.resume(store, run_id)
            resume_until_finished(store, run_id)
            assert_same_record(record(store, run_id), wants[spec])
            assert not checkpoints.latest_resumable(store.run_dir(run_id)), "a finished run keeps no trainer state"
    print(f"{trials} trials, {kills} plain kills")
