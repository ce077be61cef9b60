"""Checkpoint layout, exact resumed records in the store, pruning and disk use (issue 12: items 1, 2, 9)."""

import json
import sqlite3
import threading

import pytest
import sqlite_utils
import torch
from cli_helpers import hybtui

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.results import ResultRow
from hybtui.runs.disk import run_disk_usage
from hybtui.runs.schema import MIGRATIONS
from hybtui.runs.store import Store
from hybtui.training import checkpoint as checkpoints
from hybtui.training.checkpoint import latest_resumable as latest_checkpoint
from hybtui.training.optimizer import build_optimizer
from hybtui.training.trainer import Trainer
from hybtui.training.trainer_state import save_checkpoint

CONFIG = RunConfig(
    model="tiny", train=("mlqa-r:en,de",), eval=(), steps=2, batch_size=8, max_length=32, warmup_steps=1, device="cpu"
)


def fake_checkpoint(run_dir, step, resumable=True, size=1000):
    """A complete checkpoint made of plain bytes (the layout, not a model)."""
    staging = checkpoints.staging_path(checkpoints.path_for(run_dir, step))
    staging.mkdir(parents=True)
    (staging / "model.safetensors").write_bytes(b"w" * size)
    if resumable:
        (staging / checkpoints.TRAINER_STATE).write_bytes(b"s" * 2 * size)
    checkpoints.seal(staging, step, resumable)
    checkpoints.switch_into_place(staging, checkpoints.path_for(run_dir, step))
    return checkpoints.path_for(run_dir, step)


def crashed_run(store, config=CONFIG):
    run_id = store.create_run(config, status="running")
    store.set_status(run_id, "crashed")
    return run_id


# ---------------------------------------------------------------- the layout


def test_save_checkpoint_is_complete_resumable_and_loadable(tiny_encoder, tmp_path):
    optimizer, scheduler = build_optimizer(tiny_encoder, CONFIG)
    path = save_checkpoint(checkpoints.path_for(tmp_path, 3), tiny_encoder, optimizer, scheduler, 3, CONFIG)
    marker = checkpoints.read_marker(path)
    assert marker["step"] == 3 and marker["resumable"] and checkpoints.TRAINER_STATE in marker["files"]
    assert all((path / name).is_file() for name in marker["files"])
    assert latest_checkpoint(tmp_path) == path
    assert not list((tmp_path / "checkpoints").glob(".*")), "no staging directory is left behind"
    final = save_checkpoint(checkpoints.path_for(tmp_path, 4), tiny_encoder, None, scheduler, 4, CONFIG)
    state = torch.load(final / checkpoints.TRAINER_STATE, weights_only=True)
    assert "optimizer" not in state and state["step"] == 4, "a final checkpoint carries no optimizer moments"
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(final), device="cpu").encode(["query: x"]).shape == (1, 32)


def test_saving_a_complete_step_again_keeps_it(tiny_encoder, tmp_path):
    optimizer, scheduler = build_optimizer(tiny_encoder, CONFIG)
    path = save_checkpoint(checkpoints.path_for(tmp_path, 5), tiny_encoder, optimizer, scheduler, 5, CONFIG)
    inode = (path / checkpoints.TRAINER_STATE).stat().st_ino
    assert save_checkpoint(path, tiny_encoder, optimizer, scheduler, 5, CONFIG) == path
    assert (path / checkpoints.TRAINER_STATE).stat().st_ino == inode, "the complete checkpoint was rewritten"


def test_an_incomplete_step_is_not_resumable_and_is_replaced(tiny_encoder, tmp_path):
    optimizer, scheduler = build_optimizer(tiny_encoder, CONFIG)
    broken = checkpoints.path_for(tmp_path, 6)
    broken.mkdir(parents=True)
    (broken / "model.safetensors").write_bytes(b"half")  # what the old save left after a kill
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(broken, tiny_encoder, optimizer, scheduler, 6, CONFIG)
    assert checkpoints.is_resumable(broken) and (broken / "model.safetensors").stat().st_size > 4


def test_clean_leaves_only_resumable_checkpoints_up_to_the_resume_point(tmp_path):
    for step in (2, 4, 6):
        fake_checkpoint(tmp_path, step)
    fake_checkpoint(tmp_path, 8, resumable=False)
    root = tmp_path / "checkpoints"
    (root / ".step-0000010.partial").mkdir()
    (root / "step-0000009").mkdir()
    checkpoints.clean(tmp_path, 4)
    assert sorted(p.name for p in root.iterdir()) == ["step-0000002", "step-0000004"]
    checkpoints.clean(tmp_path, 0)
    assert list(root.iterdir()) == []


def test_pruning_keeps_the_newest_and_forgets_before_deleting(tmp_path):
    for step in (2, 4, 6):
        fake_checkpoint(tmp_path, step)
    forgotten = []
    checkpoints.prune_older(tmp_path, 0, lambda step, path: forgotten.append((step, path.is_dir())))
    assert forgotten == [(2, True), (4, True)], "the record goes while the files still exist"
    assert [p.name for p in checkpoints.complete(tmp_path)] == ["step-0000006"]
    checkpoints.finish(tmp_path, 1, forgotten.append)
    assert not checkpoints.is_resumable(checkpoints.path_for(tmp_path, 6))
    assert checkpoints.read_marker(checkpoints.path_for(tmp_path, 6))["files"] == ["model.safetensors"]


def test_run_disk_usage(tmp_path):
    fake_checkpoint(tmp_path, 2, size=1000)
    (tmp_path / "worker.log").write_bytes(b"x" * 500)
    usage = run_disk_usage(tmp_path)
    assert usage.checkpoints == 1 and usage.checkpoint_bytes >= 3000 and usage.total == usage.checkpoint_bytes + 500
    assert usage.describe().startswith("disk 3.")


def test_a_non_finite_loss_fails_naming_the_step(shared_data, tmp_path):
    config = CONFIG.replace(temperature=1e-40, eval=[])  # cos / τ overflows: the loss is NaN
    with pytest.raises(HybtuiError, match="loss of step 1 is nan"):
        Trainer(config, tmp_path, data_dir=shared_data).run()


# ---------------------------------------------------------------- the store


def test_migration_to_v5_keeps_the_last_of_each_duplicate(tmp_path):
    (tmp_path / "old").mkdir()
    db = sqlite_utils.Database(tmp_path / "old" / "hybtui.db")
    for migration in MIGRATIONS[:4]:
        migration(db)
    db.execute("PRAGMA user_version = 4")
    db["runs"].insert({"id": "r1", "config": CONFIG.to_json(), "status": "finished", "created_at": 1.0})
    db["metrics"].insert_all(
        [
            {"run_id": "r1", "key": "loss", "step": s, "value": v, "time": 1.0}
            for s, v in ((1, 0.9), (2, 0.8), (1, 0.7), (2, 0.6), (3, 0.5))
        ]
    )
    row = {
        "run_id": "r1",
        "bench": "xquad-r",
        "setting": "mono",
        "query_lang": "en",
        "doc_lang": "en",
        "metric": "map",
        "seen": None,
        "final": 1,
    }
    db["results"].insert_all(
        [
            {**row, "step": 3, "value": 0.1},
            {**row, "step": 3, "value": 0.2},
            {**row, "step": None, "value": 0.3},
            {**row, "step": None, "value": 0.4},
        ]
    )
    db.conn.commit()
    db.conn.close()
    with Store(tmp_path / "old") as store:
        assert [(m["step"], m["value"]) for m in store.metrics_since("r1")] == [(1, 0.7), (2, 0.6), (3, 0.5)]
        assert [(r["step"], r["value"]) for r in store.results("r1")] == [(3, 0.2), (None, 0.4)]
        store.add_metrics("r1", [("loss", 3, 0.25)])
        store.add_results("r1", [ResultRow("xquad-r", "mono", "en", "en", "map", 0.5, None)], step=None, final=True)
        assert store.latest_metrics("r1")["loss"]["value"] == 0.25 and len(store.metrics_since("r1")) == 3
        assert [(r["step"], r["value"]) for r in store.results("r1")] == [(3, 0.2), (None, 0.5)]
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute("INSERT INTO metrics (run_id, key, step, value, time) VALUES ('r1', 'loss', 3, 1, 1)")


def test_requeue_keeps_exactly_the_steps_up_to_the_resume_point(tmp_path):
    with Store(tmp_path) as store:
        run_id = crashed_run(store)
        store.add_metrics(run_id, [("loss", s, 1.0 / s) for s in range(1, 10)])
        rows = [ResultRow("xquad-r", "mono", "en", "en", "map", 0.5, None)]
        for step in (3, 6):
            store.add_results(run_id, rows, step=step, final=False)
        for step in (4, 8):
            store.add_artifact(run_id, "checkpoint", f"checkpoints/step-{step:07d}", step)
        run = store.requeue(run_id, 4)
        assert run["status"] == "queued" and run["step"] == 4
        assert [m["step"] for m in store.metrics_since(run_id)] == [1, 2, 3, 4]
        assert [r["step"] for r in store.results(run_id, final_only=False)] == [3]
        assert [a["step"] for a in store.artifacts(run_id, "checkpoint")] == [4]
        store.set_status(run_id, "cancelled")
        store.requeue(run_id, 0)
        assert not store.metrics_since(run_id) and not store.results(run_id, final_only=False)
        assert not store.artifacts(run_id) and store.get_run(run_id)["step"] == 0


def test_of_two_concurrent_resumes_one_wins_and_the_other_is_told_why(tmp_path):
    with Store(tmp_path) as store:
        run_id = crashed_run(store)
    barrier, outcomes = threading.Barrier(2), []

    def resume():
        with Store(tmp_path) as mine:
            barrier.wait()
            try:
                mine.requeue(run_id, 0)
                outcomes.append("queued")
            except HybtuiError as exc:
                outcomes.append(str(exc))

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted(["queued", f"run {run_id} is already queued: resumed by another command"])


# ---------------------------------------------------------------- the CLI


def test_runs_prune_frees_ended_runs_and_never_a_resume_point(tmp_path):
    store_dir = tmp_path / "store"
    with Store(store_dir) as store:
        done = store.create_run(CONFIG, status="running")
        store.set_status(done, "finished")
        resumable = crashed_run(store)
        for run_id in (done, resumable):
            for step in (4, 8):
                path = fake_checkpoint(store.run_dir(run_id), step, size=100_000)
                store.add_artifact(run_id, "checkpoint", path, step)
        (store.run_dir(done) / "checkpoints" / ".step-0000012.partial").mkdir()
        (store.run_dir(done) / "embeddings").mkdir()
        (store.run_dir(done) / "embeddings" / "corpus.npy").write_bytes(b"e" * 50_000)
    before = run_disk_usage(tmp_path / "store/runs" / resumable)
    refused = hybtui("runs", "prune", resumable, "--store", str(store_dir))
    assert refused.returncode == 2 and "crashed" in refused.stderr and "resume point" in refused.stderr

    proc = hybtui("runs", "prune", "--store", str(store_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f"{done}: freed 550.") and "total freed: 550." in proc.stdout
    run_dir = store_dir / "runs" / done
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-0000008"]
    assert not checkpoints.is_resumable(run_dir / "checkpoints/step-0000008")
    assert (run_dir / "checkpoints/step-0000008/model.safetensors").is_file() and not (run_dir / "embeddings").exists()
    assert run_disk_usage(tmp_path / "store/runs" / resumable) == before

    assert hybtui("runs", "prune", done, "--models", "--store", str(store_dir)).returncode == 0
    assert not checkpoints.complete(run_dir)
    with Store(store_dir) as store:
        assert store.artifacts(done) == [] and len(store.artifacts(resumable)) == 2
    shown = hybtui("runs", "show", resumable, "--store", str(store_dir))
    assert f"{before.describe()}" in shown.stdout and "(2 checkpoints, 600.2 KB)" in before.describe()
    disk = json.loads(hybtui("runs", "show", resumable, "--store", str(store_dir), "--json").stdout)["disk"]
    assert disk["checkpoints"] == 2 and disk["total"] == before.total


def test_keep_checkpoints_is_validated_before_anything_is_written(shared_data, tmp_path):
    proc = hybtui(
        "train",
        "--model",
        "tiny",
        "--keep-checkpoints",
        "-1",
        "--store",
        str(tmp_path / "store"),
        "--data-dir",
        str(shared_data),
    )
    assert proc.returncode == 2 and "--keep-checkpoints must be 0 or more (got -1)" in proc.stderr
    assert not (tmp_path / "store").exists()


def test_the_quick_reproduction_keeps_no_models(shared_data):
    from hybtui.runs import grid as reproduce

    grid = reproduce.plan(quick=True, model="tiny", alphas=[0.5], seeds=[1], data_dir=shared_data)
    assert {c.keep_checkpoints for c in grid.configs} == {0}
    full = reproduce.plan(quick=False, model="tiny", alphas=[0.5], seeds=[1], data_dir=shared_data)
    assert {c.keep_checkpoints for c in full.configs} == {1}
