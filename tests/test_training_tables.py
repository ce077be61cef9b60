"""Training files through `datasets`: JSONL, Parquet and CSV give the same sets and the
same batches; bad files are named with what is wrong; pools are numpy index arrays."""

from __future__ import annotations

import csv
import hashlib
import json
import resource
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybtui.data import tables
from hybtui.data.pools import LanguagePools
from hybtui.data.tables import TableSet, arrow_cache, holdout_units
from hybtui.data.training import ParallelItem, TrainingSet, load_training_sets, split_validation
from hybtui.errors import HybtuiError
from hybtui.training.grad_cache import batch_texts
from hybtui.training.sampling import BatchSampler, batch_to_json

LANGS = ("de", "en", "es")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Arrow files go to the user cache: here a fresh one per test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def rows(n_items: int = 60) -> list[dict]:
    """Parallel rows; item i lacks 'es' when i % 3 == 0, rows in language-major order."""
    return [
        {"item": f"it{i}", "lang": lang, "query": f"q{i} {lang}?", "passage": f"p{i} {lang}."}
        for lang in LANGS
        for i in range(n_items)
        if not (lang == "es" and i % 3 == 0)
    ]


def write(path: Path, table: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in table))
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(table), path)
    else:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return path


def in_memory(table: list[dict], name: str) -> TrainingSet:
    """What the rows mean, built by hand: the reference the loaders must agree with."""
    items: dict[str, ParallelItem] = {}
    for r in table:
        items.setdefault(r["item"], ParallelItem(r["item"], {}, {})).texts[r["lang"]] = (r["query"], r["passage"])
    return TrainingSet(name, tuple(items.values()))


def test_jsonl_parquet_and_csv_give_the_same_sets_and_batches(tmp_path):
    table = rows()
    reference = in_memory(table, "pairs")
    expected = [batch_to_json(b, [reference]) for b in BatchSampler([reference], "hybrid", 8, 3).batches(0, 40)]
    for suffix in (".jsonl", ".parquet", ".csv"):
        (ts,) = load_training_sets([str(write(tmp_path / f"pairs{suffix}", table))], None)
        assert isinstance(ts, TableSet) and ts.name == "pairs" and ts.languages == LANGS
        assert ts.item_ids() == reference.item_ids()
        assert (ts.presence() == reference.presence()).all()
        sampler = BatchSampler([ts], "hybrid", 8, 3)
        assert [batch_to_json(b, [ts]) for b in sampler.batches(0, 40)] == expected, suffix
        batch = sampler.batch(7)
        assert batch_texts(batch, {"pairs": ts}) == batch_texts(batch, {"pairs": reference})
        assert ts.texts_in("es") == reference.texts_in("es")
        train, val = split_validation(ts, 0.2)
        ref_train, ref_val = split_validation(reference, 0.2)
        assert (train.item_ids(), val.item_ids()) == (ref_train.item_ids(), ref_val.item_ids())
    assert any(arrow_cache().rglob("*.arrow"))  # converted once, under the user's cache


def test_csv_ids_stay_strings_and_several_datasets_split(tmp_path):
    table = [{**r, "item": r["item"][2:], "dataset": "a" if int(r["item"][2:]) < 30 else "b"} for r in rows()]
    a, b = load_training_sets([str(write(tmp_path / "two.csv", table))], None)
    assert (a.name, b.name) == ("a", "b") and a.item_ids()[:3] == ["0", "1", "2"] and b.item_ids()[0] == "30"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize(
    "change,message",
    [
        (lambda t: [{k: v for k, v in r.items() if k != "passage"} for r in t], r"missing column 'passage'"),
        (lambda t: [{**r, "language": "x"} for r in t], "unknown column.*'language'; allowed: item, dataset"),
        (lambda t: [*t[:5], {**t[5], "query": "  "}, *t[6:]], r"row 6: field 'query' is empty"),
        (lambda t: [*t, t[2]], r"row 121: item 'it2' in language 'de' of dataset 'bad' already appeared at row 3"),
    ],
)
def test_bad_tables_name_file_row_and_problem(tmp_path, suffix, change, message):
    table = rows()
    table = change([r for r in table if r["lang"] != "es"])
    path = write(tmp_path / f"bad{suffix}", table)
    with pytest.raises(HybtuiError, match=message) as err:
        load_training_sets([str(path)], None)
    assert str(err.value).startswith(str(path))


def test_empty_files_and_unknown_extensions(tmp_path):
    for name in ("empty.jsonl", "empty.csv", "empty.parquet"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(HybtuiError, match=f"{name}: holds no training rows"):
            load_training_sets([str(tmp_path / name)], None)
    (tmp_path / "header.csv").write_text("item,lang,query,passage\n")
    with pytest.raises(HybtuiError, match="header.csv: holds no training rows"):
        load_training_sets([str(tmp_path / "header.csv")], None)
    pq.write_table(pa.Table.from_pylist(rows(3))[:0], tmp_path / "none.parquet")
    with pytest.raises(HybtuiError, match="none.parquet: holds no training rows"):
        load_training_sets([str(tmp_path / "none.parquet")], None)
    with pytest.raises(HybtuiError, match=r"pairs.tsv: unknown file type '.tsv'; training files are .jsonl, .parquet"):
        load_training_sets([str(tmp_path / "pairs.tsv")], None)
    with pytest.raises(HybtuiError, match="missing.parquet: file not found"):
        load_training_sets([str(tmp_path / "missing.parquet")], None)


def test_a_large_set_samples_with_numpy_pools_and_bounded_memory(tmp_path):
    """20k items × 3 languages: the pools are integer arrays over the table, and loading
    and drawing cost little more memory than the table's indices."""
    n = 20_000
    ids = pa.array([f"it{i}" for i in range(n)])
    parts = [pa.table({"item": ids, "lang": pa.array([lang] * n), "query": ids, "passage": ids}) for lang in LANGS]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.concat_tables(parts), path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    (ts,) = load_training_sets([str(path)], None)
    sampler = BatchSampler([ts], "hybrid", 64, 0)
    for batch in sampler.batches(0, 200):
        texts = batch_texts(batch, {ts.name: ts})
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(ts) == n and isinstance(ts.rows, np.ndarray) and ts.rows.dtype == np.int64
    view = LanguagePools(ts, None)
    for pool in (*view.lang_pools.values(), view.cross_pool):
        assert isinstance(pool, np.ndarray) and pool.dtype.kind == "i" and len(pool) == n
    assert texts.queries[0] == texts.passages[0].split()[0]  # texts come from the batch's own rows
    assert grown_mb < 150, f"loading and drawing grew the peak RSS by {grown_mb:.0f} MB"


def test_holdout_units_equal_the_per_item_python_hash():
    """Vectorised, the hold-out numbers are exactly the ones a Python loop gives, so the
    items held out of existing data do not change."""
    ids = [f"it{i}" for i in range(5000)] + ["", "ü-ß", "中文 7", "x" * 300]
    loop = [int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "big") / 2**64 for i in ids]
    assert holdout_units(ids).tolist() == loop
    # the integer → float rounding near ties and at the top of the range is Python's
    edges = [2**64 - 1, 2**64 - 2**10, 2**63 + 2**10, 2**63 + 2**10 + 1, 2**53 + 1, 2**54 + 3, 1, 0]
    raw = b"".join(e.to_bytes(8, "big") for e in edges)
    assert (np.frombuffer(raw, dtype=">u8").astype(np.float64) / 2**64).tolist() == [e / 2**64 for e in edges]


def test_the_index_of_a_checked_table_is_reused_until_the_file_changes(tmp_path, monkeypatch):
    path = write(tmp_path / "pairs.parquet", rows())
    first = load_training_sets([str(path)], None)
    assert len(list((arrow_cache() / "index").glob("*.npz"))) == 1

    def not_again(*args):
        raise AssertionError("a saved index must spare checking and grouping the table again")

    with monkeypatch.context() as patch:
        patch.setattr(tables, "check_columns", not_again)
        patch.setattr(tables, "_group", not_again)
        again = load_training_sets([str(path)], None)
    for a, b in zip(first, again, strict=True):
        assert (a.name, a.languages, a.item_ids()) == (b.name, b.languages, b.item_ids())
        assert (a.rows == b.rows).all() and (a.holdout_units() == b.holdout_units()).all()
    bad = rows()
    bad[4]["query"] = " "
    write(path, bad)  # a changed file: new Arrow files, checked again
    with pytest.raises(HybtuiError, match=r"row 5: field 'query' is empty"):
        load_training_sets([str(path)], None)


def test_a_repeat_in_a_later_dataset_names_its_own_row(tmp_path):
    table = [{**r, "dataset": "a" if int(r["item"][2:]) % 2 else "b"} for r in rows(20)]
    repeat = next(i for i, r in enumerate(table) if r["dataset"] == "b" and r["lang"] == "en")
    path = write(tmp_path / "two.parquet", [*table, table[repeat]])
    with pytest.raises(
        HybtuiError,
        match=rf"row {len(table) + 1}: item 'it0' in language 'en' of dataset 'b' "
        rf"already appeared at row {repeat + 1}$",
    ):
        load_training_sets([str(path)], None)
