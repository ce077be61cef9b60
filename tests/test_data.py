"""LAReQA loading: real files (the tests' data directory), relevance, subsets, and every bad input."""

import json

import numpy as np
import pytest

from hybtui.data import benchmarks, lareqa, sources
from hybtui.errors import HybtuiError


def test_xquad_r_is_eleven_way_parallel(shared_data):
    bench = lareqa.load("xquad-r", data_dir=shared_data, allow_download=False)
    assert bench.languages == lareqa.LANGUAGES["xquad-r"]
    for _lang, split in bench.splits.items():
        assert len(split.queries) == 1190
        assert 852 <= len(split.candidates) <= 1276
    assert set(bench.splits["en"].query_ids) == set(bench.splits["th"].query_ids)
    assert (bench.relevant_in("en", "de") >= 0).all()


def test_relevant_candidate_holds_the_answer(shared_data):
    bench = lareqa.load("xquad-r", ["en", "de"], data_dir=shared_data / "lareqa", allow_download=False)
    doc = json.loads((shared_data / "lareqa/xquad-r/de.json").read_text())
    answers = {qa["id"]: qa["answers"][0]["text"] for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]}
    de = bench.splits["de"]
    rel = bench.relevant_in("en", "de")
    en = bench.splits["en"]
    for i in range(0, 1190, 97):
        assert answers[en.query_ids[i]] in de.candidates[rel[i]]


def test_mlqa_r_items_are_partially_parallel(shared_data):
    bench = lareqa.load("mlqa-r", data_dir=shared_data, allow_download=False)
    en_in_de = bench.relevant_in("en", "de")
    assert 0 < (en_in_de >= 0).sum() < len(en_in_de)  # not every English item exists in German
    assert (bench.relevant_in("de", "en") >= 0).all()  # every id is in en


def test_max_queries_is_deterministic_and_parallel(shared_data):
    bench = lareqa.load("xquad-r", ["en", "ar"], data_dir=shared_data, allow_download=False)
    a, b = bench.max_queries(40), bench.max_queries(40)
    assert a.splits["en"].query_ids == b.splits["en"].query_ids
    assert len(a.splits["en"].queries) == 40
    assert a.splits["en"].query_ids == a.splits["ar"].query_ids  # the same items in both languages
    assert a.splits["en"].candidates == bench.splits["en"].candidates  # the pool is never cut
    with pytest.raises(HybtuiError, match="at least 1"):
        bench.max_queries(0)


def test_truncated_file_is_named_with_the_problem(writable_data):
    root = writable_data
    path = root / "lareqa/xquad-r/de.json"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(HybtuiError) as err:
        lareqa.load("xquad-r", ["en", "de"], data_dir=root, allow_download=False)
    assert str(path) in str(err.value) and "not valid JSON" in str(err.value)


def test_modified_file_is_a_checksum_mismatch(writable_data):
    root = writable_data
    path = root / "lareqa/xquad-r/en.json"
    doc = json.loads(path.read_text())
    doc["data"][0]["paragraphs"][0]["qas"][0]["question"] = "changed?"
    path.write_text(json.dumps(doc))
    with pytest.raises(HybtuiError, match="checksum mismatch") as err:
        lareqa.load("xquad-r", ["en"], data_dir=root, allow_download=False)
    assert str(path) in str(err.value)


def test_missing_files_offline_say_where_to_put_them(tmp_path, isolated_cache):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HybtuiError) as err:
        lareqa.load("xquad-r", ["en", "th"], data_dir=empty)  # download attempted, fails offline
    message = str(err.value)
    assert "xquad-r/en.json" in message and "xquad-r/th.json" in message
    assert str(empty) in message
    assert not any(isolated_cache.rglob("*.json")), "a failed download must leave nothing behind"


def test_malformed_file_is_named(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "c"}]}]}))
    with pytest.raises(HybtuiError, match="not in the LAReQA format"):
        lareqa.parse_file(bad, "en")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("xquad-r:en,xx", "unknown language.*'xx'.*available: ar, de, el"),
        ("xquad-r:", "empty language list"),
        ("squad", "unknown benchmark 'squad'"),
        ("xquad-r,de", "selects all its languages"),
        ("xquad-r,xquad-r:en", "selected twice"),
    ],
)
def test_bad_eval_specs(spec, message):
    with pytest.raises(HybtuiError, match=message):
        benchmarks.parse_eval_spec(spec)


def test_eval_spec_grammar():
    got = benchmarks.parse_eval_spec(["xquad-r:en,de,mlqa-r"])
    assert [(s.name, s.languages) for s in got] == [("xquad-r", ("en", "de")), ("mlqa-r", None)]
    got = benchmarks.parse_eval_spec(["mlqa-r:zh", "xquad-r"])
    assert [(s.name, s.languages) for s in got] == [("mlqa-r", ("zh",)), ("xquad-r", None)]


def test_data_dir_that_does_not_exist(tmp_path):
    with pytest.raises(HybtuiError, match="does not exist"):
        sources.data_dir_from_env(tmp_path / "nope")


def test_answer_indices_are_within_the_candidates(shared_data):
    bench = lareqa.load("mlqa-r", data_dir=shared_data, allow_download=False)
    for split in bench.splits.values():
        assert np.all((split.answer >= 0) & (split.answer < len(split.candidates)))
