"""The `hybtui` command as a user runs it: real subprocesses, exit codes, stdout/stderr."""

import json

import pytest
from cli_helpers import hybtui

RESULT_COLUMNS = {"bench", "setting", "query_lang", "doc_lang", "metric", "value", "seen"}


def test_eval_json_rows_follow_the_contract(shared_data, tmp_path):
    proc = hybtui(
        "eval",
        "--model",
        "tiny",
        "--eval",
        "xquad-r:en,de,mlqa-r:en,zh",
        "--max-queries",
        "8",
        "--seen",
        "en",
        "--json",
        "--data-dir",
        str(shared_data),
        check=True,
    )
    payload = json.loads(proc.stdout)
    rows = payload["results"]
    assert rows and all(set(r) == RESULT_COLUMNS for r in rows)
    assert {r["bench"] for r in rows} == {"xquad-r", "mlqa-r"}
    assert set(payload["summary"]["xquad-r"]) == {"mono", "cross", "multi"}
    assert "rank_distance" in payload["summary"]["mlqa-r"]["multi"]
    assert {r["seen"] for r in rows if r["query_lang"] == "de" and r["setting"] == "mono"} == {"unseen"}


def test_eval_table_for_people(shared_data):
    proc = hybtui(
        "eval",
        "--model",
        "tiny",
        "--eval",
        "xquad-r:en,th",
        "--max-queries",
        "5",
        env_extra={"HYBTUI_DATA_DIR": str(shared_data), "COLUMNS": "120"},
        check=True,
    )
    assert "mono" in proc.stdout and "rank" in proc.stdout and "query language" in proc.stdout
    assert "th" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--eval", "xquad-r:en,xx"],
            "unknown language(s) 'xx'; available: ar, de, el, en, es, hi, ru, th, tr, vi, zh",
        ),
        (["--eval", "xquad-r:"], "empty language list"),
        (["--eval", "mlqa-r:th"], "unknown language(s) 'th'; available: ar, de, en, es, hi, vi, zh"),
        (["--model", "/nonexistent/checkpoint"], "model path /nonexistent/checkpoint does not exist"),
        (["--model", "xlmr-base"], "unknown model 'xlmr-base'"),
        (["--max-queries", "0"], "--max-queries must be at least 1"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(shared_data, isolated_cache, args, message):
    proc = hybtui("eval", "--data-dir", str(shared_data), "--model", "tiny", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not isolated_cache.exists() or not any(isolated_cache.rglob("*.json"))


def test_truncated_and_modified_files(writable_data):
    root = writable_data
    broken = root / "lareqa/xquad-r/el.json"
    broken.write_bytes(broken.read_bytes()[:-100])
    proc = hybtui("eval", "--model", "tiny", "--eval", "xquad-r:en,el", "--data-dir", str(root))
    assert proc.returncode == 2 and str(broken) in proc.stderr and "not valid JSON" in proc.stderr
    modified = root / "lareqa/xquad-r/de.json"
    modified.write_bytes(modified.read_bytes().replace(b"Panthers", b"Jaguars"))
    proc = hybtui("eval", "--model", "tiny", "--eval", "xquad-r:de", "--data-dir", str(root))
    assert proc.returncode == 2 and str(modified) in proc.stderr and "checksum mismatch" in proc.stderr
    verify = hybtui("data", "verify", "xquad-r", "--data-dir", str(root))
    assert verify.returncode == 1 and "MISMATCH" in verify.stdout and "ok" in verify.stdout


def test_missing_file_offline(tmp_path):
    root = tmp_path / "empty"
    (root / "lareqa/xquad-r").mkdir(parents=True)
    proc = hybtui("eval", "--model", "tiny", "--eval", "xquad-r:en", "--data-dir", str(root))
    assert proc.returncode == 2
    assert "xquad-r/en.json" in proc.stderr and "could not download" in proc.stderr
    assert str(root) in proc.stderr


def test_data_ls_and_verify(shared_data):
    proc = hybtui("data", "ls", "--json", "--data-dir", str(shared_data), check=True)
    entries = json.loads(proc.stdout)
    assert len(entries) == 18 and all(e["path"] for e in entries)
    assert hybtui("data", "verify", "--data-dir", str(shared_data)).returncode == 0


def test_models_ls_json():
    entries = json.loads(hybtui("models", "ls", "--json", check=True).stdout)
    names = {e["name"] for e in entries}
    assert {
        "me5-small",
        "tiny",
        "xlm-roberta-base",
        "xlm-roberta-large",
        "labse",
        "mbert",
        "multilingual-e5-small",
        "multilingual-e5-base",
        "multilingual-e5-large",
    } <= names
    labse = next(e for e in entries if e["name"] == "labse")
    assert labse["status"] == "needs download" and labse["pooling"] == "cls"


def test_sample_json_is_one_batch_per_line(shared_data):
    sample = ("sample", "--sampler", "hybrid", "--train", "mlqa-r:en,de,zh", "--batch-size", "16", "--seed", "3")
    sample += ("--json", "--data-dir", str(shared_data))
    proc = hybtui(*sample, "--alpha", "0.5", "--steps", "40", check=True)
    batches = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [b["step"] for b in batches] == list(range(40))
    assert all(set(b) == {"step", "type", "dataset", "pairs"} and len(b["pairs"]) == 16 for b in batches)
    for b in batches:
        langs = {(p["query_lang"], p["passage_lang"]) for p in b["pairs"]}
        if b["type"] == "mono":
            assert len({q for q, _ in langs}) == 1 and all(q == p for q, p in langs)
        else:
            assert all(q != p for q, p in langs)
        assert len({p["item"] for p in b["pairs"]}) == 16
    again = hybtui(*sample, "--steps", "5", "--start", "35", check=True)
    assert [json.loads(line) for line in again.stdout.splitlines()] == batches[35:]


def test_sample_summary_for_people(shared_data):
    proc = hybtui("sample", "--steps", "50", "--batch-size", "20", "--data-dir", str(shared_data), check=True)
    assert "50 batches of 20" in proc.stdout and "cross pairs" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "1.5"], "--alpha must be within [0, 1]"),
        (["--sampler", "cross", "--train", "mlqa-r:en"], "single language en"),
        (["--sampler", "hybrid", "--train", "mlqa-r:de"], "single language de"),
        (["--sampler", "mono", "--train", "mlqa-r:en,de", "--batch-size", "600"], "larger than the mono pool of de"),
        (["--train", "mlqa-r:en,xx"], "unknown language(s) 'xx'"),
        (["--steps", "-1"], "--steps must be 0 or more"),
    ],
)
def test_train_rejects_invalid_configurations_before_running(shared_data, tmp_path, args, message):
    store = tmp_path / "store"
    proc = hybtui("train", "--model", "tiny", *args, "--store", str(store), "--data-dir", str(shared_data))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not store.exists(), "a rejected configuration records nothing"


def test_train_foreground_with_a_toml_config(shared_data, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        'model = "tiny"\nsampler = "hybrid"\ntrain = ["mlqa-r:en,de"]\neval = ["xquad-r:en,el"]\n'
        "steps = 2\nbatch_size = 8\nmax_length = 32\nwarmup_steps = 1\n"
    )
    proc = hybtui(
        "train",
        "--config",
        str(config),
        "--steps",
        "3",
        "--store",
        str(tmp_path / "store"),
        "--data-dir",
        str(shared_data),
        "--json",
        check=True,
    )
    payload = json.loads(proc.stdout)
    assert payload["status"] == "finished" and payload["step"] == 3
    assert set(payload["summary"]["xquad-r"]) == {"mono", "cross", "multi"}
    run_dir = tmp_path / "store/runs" / payload["id"]
    assert (run_dir / "checkpoints/step-0000003/model.safetensors").is_file()
    shown = json.loads(
        hybtui("runs", "show", payload["id"], "--store", str(tmp_path / "store"), "--json", check=True).stdout
    )
    assert shown["run"]["status"] == "finished" and shown["run"]["config"]["steps"] == 3
    assert shown["latest_metrics"]["loss"]["step"] == 3
