"""Training data: LAReQA as parallel items, the --train grammar, JSONL rows and every bad
row (named by file and line), hub datasets, and the held-out validation split."""

import json
from pathlib import Path

import pytest

from hybtui.data import lareqa
from hybtui.data.benchmarks import BenchmarkSelection
from hybtui.data.training import (
    HubSource,
    ParallelItem,
    TrainingSet,
    load_training_sets,
    parse_train_spec,
    split_validation,
)
from hybtui.errors import HybtuiError


def test_mlqa_r_items_are_the_parallel_questions(shared_data):
    (ts,) = load_training_sets(["mlqa-r"], shared_data, allow_download=False)
    assert ts.name == "mlqa-r"
    assert ts.languages == lareqa.LANGUAGES["mlqa-r"]
    assert len(ts.items) == 1148
    assert all("en" in item.texts and 2 <= len(item.texts) <= 4 for item in ts.items)
    assert all(not item.hard_negatives for item in ts.items)
    bench = lareqa.load("mlqa-r", ["de"], shared_data, allow_download=False)
    de = bench.splits["de"]
    by_id = {item.item_id: item for item in ts.items}
    for i in range(0, len(de.query_ids), 50):  # query = question, passage = the answer sentence
        assert by_id[de.query_ids[i]].texts["de"] == (de.queries[i], de.candidates[de.answer[i]])
    assert len(ts.items_with("de")) == len(de.query_ids)


def test_language_selection_and_both_spellings_of_several_sources(shared_data):
    joined = load_training_sets(["mlqa-r:de,en,xquad-r:ar"], shared_data, allow_download=False)
    repeated = load_training_sets(["mlqa-r:de,en", "xquad-r:ar"], shared_data, allow_download=False)
    assert [ts.name for ts in joined] == ["mlqa-r", "xquad-r"]
    assert joined == repeated
    assert joined[0].languages == ("de", "en")
    assert len(joined[0].items) == 1148  # every item is in English
    assert joined[1].languages == ("ar",) and len(joined[1].items) == 1190


def test_spec_grammar_keeps_order_and_kinds(tmp_path):
    assert parse_train_spec("a.jsonl,mlqa-r:de,en,hf:org/qa:dev,xquad-r") == [
        Path("a.jsonl"),
        BenchmarkSelection("mlqa-r", ("de", "en")),
        HubSource("org/qa", "dev"),
        BenchmarkSelection("xquad-r", None),
    ]
    assert parse_train_spec(["hf:./local"]) == [HubSource("./local", "train")]


@pytest.mark.parametrize(
    "spec,message",
    [
        ("mlqa-r:de,xx", "mlqa-r: unknown language.*'xx'; available: ar, de, en, es, hi, vi, zh"),
        ("mlqa-r:", "mlqa-r: empty language list; available: ar, de, en, es, hi, vi, zh"),
        ("squad", "unknown training source 'squad'; expected mlqa-r"),
        ("foo:de", "unknown training source 'foo:de'"),
        ("mlqa-r:de,x.jsonl,en", "unknown training source 'en'"),
        ("mlqa-r,xquad-r,mlqa-r:de", "benchmark 'mlqa-r' is selected twice in --train"),
        ("mlqa-r,de", "'de' follows 'mlqa-r', which selects all its languages"),
        ("hf:", "names no dataset; write hf:NAME"),
        (",", "--train names no training data"),
    ],
)
def test_spec_errors(spec, message):
    with pytest.raises(HybtuiError, match=message):
        parse_train_spec(spec)


# ---------------------------------------------------------------- JSONL


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def row(item="q1", lang="en", **extra):
    return {"item": item, "lang": lang, "query": f"{item} {lang}?", "passage": f"{item} {lang}.", **extra}


def test_jsonl_groups_rows_into_datasets_and_items(tmp_path):
    path = write_jsonl(
        tmp_path / "faq.jsonl",
        [
            row("q1", "en", hard_negatives=["not it", "nor this"]),
            row("q1", "de"),
            "",
            row("q2", "en"),
            row("q1", "en", dataset="other"),  # the same item id in another dataset is another item
        ],
    )
    faq, other = load_training_sets([str(path)], None)
    assert (faq.name, other.name) == ("faq", "other")  # default: the file stem
    assert faq.item_ids() == ["q1", "q2"] and faq.languages == ("de", "en")
    assert faq.presence().tolist() == [[True, True], [False, True]]
    assert faq.batch_texts([(0, "de", "en"), (1, "en", "en")], 5) == (
        ["q1 de?", "q2 en?"],
        ["q1 en.", "q2 en."],
        ["not it", "nor this"],
    )
    assert faq.batch_texts([(0, "en", "en")], 1)[2] == ["not it"]
    assert faq.texts_in("de") == [("q1 de?", "q1 de.")]
    assert other.item_ids() == ["q1"] and other.texts_in("en") == [("q1 en?", "q1 en.")]


@pytest.mark.parametrize(
    "rows,line,message",
    [
        ([row(), '{"item": "q2", '], 2, "not valid JSON"),
        ([row(), "[1, 2]"], 2, "expected a JSON object"),
        ([row(), "", {"item": "q2", "lang": "en", "query": "?"}], 3, "missing field 'passage'"),
        ([{**row(), "query": "  "}], 1, "field 'query' is empty"),
        ([{**row(), "item": 7}], 1, r"field 'item' must be a string \(got int\)"),
        ([row(dataset="")], 1, "field 'dataset' is empty"),
        ([row(hard_negatives="no")], 1, "'hard_negatives' must be a list of non-empty strings"),
        ([row(hard_negatives=["ok", 3])], 1, "'hard_negatives' must be a list of non-empty strings"),
        ([row(language="en")], 1, "unknown field.*'language'; allowed: item, dataset, lang"),
        ([row(), row("q2"), row("q1")], 3, r"item 'q1' in language 'en' of dataset 'bad' already appeared at .*:1$"),
    ],
)
def test_bad_jsonl_rows_name_file_and_line(tmp_path, rows, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(HybtuiError, match=message) as err:
        load_training_sets([str(path)], None)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_unreadable_jsonl_files(tmp_path):
    with pytest.raises(HybtuiError, match="missing.jsonl: file not found"):
        load_training_sets([str(tmp_path / "missing.jsonl")], None)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(HybtuiError, match="empty.jsonl: holds no training rows"):
        load_training_sets([str(empty)], None)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(row()).encode() + b"\n" + json.dumps(row("q2")).encode().replace(b"q2", b"q\xe9"))
    with pytest.raises(HybtuiError, match="latin.jsonl:2: not UTF-8"):
        load_training_sets([str(latin)], None)


def test_training_set_names_must_be_unique(tmp_path, shared_data):
    a = write_jsonl(tmp_path / "a.jsonl", [row()])
    b = write_jsonl(tmp_path / "b.jsonl", [row(dataset="a")])
    with pytest.raises(HybtuiError, match=f"name 'a' comes from both {a} and {b}"):
        load_training_sets([f"{a},{b}"], None)
    clash = write_jsonl(tmp_path / "c.jsonl", [row(dataset="mlqa-r")])
    with pytest.raises(HybtuiError, match="name 'mlqa-r' comes from both mlqa-r:de and"):
        load_training_sets(["mlqa-r:de", str(clash)], shared_data, allow_download=False)


def test_hub_source_reads_a_local_file_through_datasets(tmp_path):
    path = write_jsonl(tmp_path / "hubby.jsonl", [row("q1", "en"), row("q1", "de"), row("q2", "en")])
    (ts,) = load_training_sets([f"hf:{path}"], None)
    assert ts.name == "hubby" and ts.languages == ("de", "en") and len(ts) == 2
    with pytest.raises(HybtuiError, match="could not load split 'nope'"):
        load_training_sets([f"hf:{path}:nope"], None)


# ---------------------------------------------------------------- validation split


def test_validation_split_is_deterministic_and_keeps_translations_together(shared_data):
    (ts,) = load_training_sets(["mlqa-r"], shared_data, allow_download=False)
    train, val = split_validation(ts, 0.1)
    assert (train.name, val.name) == (ts.name, ts.name)
    train_ids = {item.item_id for item in train.items}
    val_ids = {item.item_id for item in val.items}
    assert not train_ids & val_ids  # an item and all its translations on one side
    assert train_ids | val_ids == {item.item_id for item in ts.items}
    assert abs(len(val_ids) - 114.8) < 4.5 * (1148 * 0.1 * 0.9) ** 0.5
    assert val.items == tuple(item for item in ts.items if item.item_id in val_ids)  # items stay whole
    reversed_set = TrainingSet(ts.name, ts.items[::-1])
    assert {item.item_id for item in split_validation(reversed_set, 0.1)[1].items} == val_ids
    assert {item.item_id for item in split_validation(ts, 0.2)[1].items} > val_ids  # nested in the fraction
    train0, val0 = split_validation(ts, 0.0)
    assert train0 == ts and not val0.items


def test_validation_split_rejects_bad_fractions():
    ts = TrainingSet("s", (ParallelItem("only", {"en": ("q", "p")}, {}),))
    for fraction in (-0.1, 1.0, 1.5):
        with pytest.raises(HybtuiError, match=r"validation fraction must be within \[0, 1\)"):
            split_validation(ts, fraction)
    with pytest.raises(HybtuiError, match="holds out all 1 items of 's'"):
        split_validation(ts, 0.99999)
