"""The `hybtui` command as a user runs it: real subprocesses, exit codes, stdout/stderr."""

import json
import os
import shutil
import subprocess
import sys

import pytest

RESULT_COLUMNS = {"bench", "setting", "query_lang", "doc_lang", "metric", "value", "seen"}


def hybtui(*args, env_extra=None, check=False):
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-m", "hybtui", *args], capture_output=True, text=True, env=env,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"hybtui {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_eval_json_rows_follow_the_contract(shared_data, tmp_path):
    proc = hybtui("eval", "--model", "tiny", "--eval", "xquad-r:en,de,mlqa-r:en,zh", "--max-queries", "8",
                  "--seen", "en", "--json", "--data-dir", str(shared_data), check=True)
    payload = json.loads(proc.stdout)
    rows = payload["results"]
    assert rows and all(set(r) == RESULT_COLUMNS for r in rows)
    assert {r["bench"] for r in rows} == {"xquad-r", "mlqa-r"}
    assert set(payload["summary"]["xquad-r"]) == {"mono", "cross", "multi"}
    assert "rank_distance" in payload["summary"]["mlqa-r"]["multi"]
    assert {r["seen"] for r in rows if r["query_lang"] == "de" and r["setting"] == "mono"} == {"unseen"}


def test_eval_table_for_people(shared_data):
    proc = hybtui("eval", "--model", "tiny", "--eval", "xquad-r:en,th", "--max-queries", "5",
                  env_extra={"HYBTUI_DATA_DIR": str(shared_data), "COLUMNS": "120"}, check=True)
    assert "mono" in proc.stdout and "rank" in proc.stdout and "query language" in proc.stdout
    assert "th" in proc.stdout


def _copy(shared_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shared_data / "lareqa", root / "lareqa")
    for f in root.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eval", "xquad-r:en,xx"], "unknown language(s) 'xx'; available: ar, de, el, en, es, hi, ru, th, tr, vi, zh"),
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


def test_truncated_and_modified_files(shared_data, tmp_path):
    root = _copy(shared_data, tmp_path)
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
    assert {"me5-small", "tiny", "xlm-roberta-base", "xlm-roberta-large", "labse", "mbert",
            "multilingual-e5-small", "multilingual-e5-base", "multilingual-e5-large"} <= names
    labse = next(e for e in entries if e["name"] == "labse")
    assert labse["status"] == "needs download" and labse["pooling"] == "cls"
