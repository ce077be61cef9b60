"""Per-query results and the paired tests over them, checked against independent computations:
a sign-flip test enumerated by hand, scipy's own permutation test, the t-test by its formula,
Holm worked by hand, and per-query means against the figures a real evaluation stored."""

import itertools
import json

import numpy as np
import pytest
from scipy import stats
from tui_fixtures import DEMO_NOW, build_demo_store
from typer.testing import CliRunner

from hybtui.cli.app import app
from hybtui.data import lareqa
from hybtui.evaluation import evaluate, per_query
from hybtui.reporting import significance as sig
from hybtui.runs import query_files
from hybtui.runs.store import Store


def test_exact_sign_flip_equals_all_two_to_the_n_sign_vectors_by_hand():
    d = np.array([0.3, -0.1, 0.25, 0.05, 0.4, -0.2, 0.15, 0.1])
    observed = abs(d.sum())
    flips = [abs(sum(s * x for s, x in zip(signs, d))) for signs in itertools.product((1, -1), repeat=len(d))]
    by_hand = sum(f >= observed - 1e-12 for f in flips) / 2 ** len(d)
    assert sig.sign_flip_p(d) == pytest.approx(by_hand, abs=1e-12)
    assert by_hand == pytest.approx(42 / 256)


def test_sign_flip_agrees_with_scipys_permutation_test():
    rng = np.random.default_rng(3)
    a, b = rng.random(12), rng.random(12) + 0.15  # exact on both sides (2^12 sign vectors)
    theirs = stats.permutation_test(
        (b, a), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=np.inf
    ).pvalue
    assert sig.sign_flip_p(b - a) == pytest.approx(theirs, abs=1e-9)
    a, b = rng.random(60), rng.random(60) + 0.08  # Monte Carlo on both sides
    theirs = stats.permutation_test(
        (b, a), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=40_000, random_state=1
    ).pvalue
    assert sig.sign_flip_p(b - a) == pytest.approx(theirs, abs=0.01)


def test_t_test_and_interval_by_their_formula():
    a = np.array([0.5, 0.7, 0.2, 0.9, 0.4, 0.6])
    b = np.array([0.6, 0.65, 0.35, 0.95, 0.5, 0.8])
    d = b - a
    se = d.std(ddof=1) / np.sqrt(len(d))
    t = d.mean() / se
    p, low, high = sig.t_test(b, a)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1), rel=1e-9)
    half = stats.t.ppf(0.975, len(d) - 1) * se
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)
    assert sig.t_test(a, a) == (1.0, 0.0, 0.0)  # identical runs: no difference, not a NaN


def test_holm_by_hand():
    # sorted 0.005 (×4 = .02), 0.01 (×3 = .03), 0.03 (×2 = .06), 0.04 (×1 = .04 → .06, monotone)
    adjusted = sig.holm([0.01, 0.04, 0.03, 0.005, np.nan])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])
    assert sig.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 2 × 0.5 caps at 1; 0.9 keeps the order


@pytest.fixture(scope="module")
def evaluated(shared_data, tiny_encoder):
    """A real tiny-model evaluation with its per-query table, cut to unequal queries per
    language (40, 25) so that questions, languages and pairs weigh differently."""
    full = lareqa.load("xquad-r", ["en", "de"], shared_data, allow_download=False)
    cut = {lang: split.subset(np.arange(n)) for (lang, split), n in zip(full.splits.items(), (40, 25))}
    bench = lareqa.Benchmark("xquad-r", cut)
    tables = []
    rows = evaluate.evaluate(tiny_encoder, [bench], seen=["en"], batch_size=32, on_queries=tables.append)
    return rows, per_query.concat(tables)


def test_per_query_means_are_the_stored_figures(evaluated):
    rows, table = evaluated
    assert table.pools == {"xquad-r": table.pools["xquad-r"]} and set(table.pools["xquad-r"]) == {"en", "de"}
    for r in rows:
        if r.query_lang == "avg":
            if r.seen is None:  # the macro-average is each question-weighted array's mean
                s = table.where(setting=r.setting)
                a, _ = sig.per_question(s, s, r.metric)
                assert a.mean() == pytest.approx(r.value, abs=1e-9), (r.setting, r.metric)
            continue
        cell = table.where(setting=r.setting, query_lang=r.query_lang, doc_lang=r.doc_lang)
        assert len(cell) and abs(cell.columns[r.metric].mean() - r.value) < 1e-9, (r.setting, r.metric)


def test_stored_tables_round_trip_and_bad_files_are_named(evaluated, tmp_path):
    _, table = evaluated
    path = query_files.write(tmp_path, 7, False, table)
    assert path.name == "step-0000007.npz" and not list(path.parent.glob("*.tmp"))
    back = query_files.read(path)
    assert back.pools == table.pools
    assert all(np.array_equal(back.columns[k], table.columns[k]) for k in per_query.KEYS)
    assert all(np.array_equal(back.columns[m], table.columns[m], equal_nan=True) for m in table.metrics)
    bad = tmp_path / "queries" / "final.npz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(Exception, match="final.npz: cannot read per-query results"):
        query_files.read_final(tmp_path)


def test_runs_on_different_queries_are_compared_on_the_common_ones(evaluated):
    _, table = evaluated
    ids = sorted(set(table.columns["query_id"]))
    fewer = table.select(np.isin(table.columns["query_id"], ids[: len(ids) // 2]))
    found = sig.against_first([table, fewer], ["full", "half"])
    assert any("evaluated on different queries" in note and "queries both have only" in note for note in found.notes)
    mono = next(c for c in found.comparisons if (c.setting, c.metric, c.query_lang) == ("mono", "map", "avg"))
    assert mono.n == len(ids) // 2 and mono.diff == pytest.approx(0.0) and mono.p_randomization == 1.0
    s = fewer.where(setting="mono")
    assert mono.base == pytest.approx(sig.per_question(s, s, "map")[0].mean())
    other_pool = per_query.QueryTable(table.columns, {"xquad-r": {"en": 1}})
    found = sig.against_first([table, other_pool], ["a", "b"])
    assert {c.setting for c in found.comparisons} == {"mono", "cross"} and "pools differ" in found.notes[0]


def test_a_real_improvement_is_significant_and_holm_spans_every_comparison(evaluated):
    _, table = evaluated
    better = dict(table.columns)
    better["map"] = np.clip(better["map"] + 0.05 + 0.01 * np.random.default_rng(0).standard_normal(len(table)), 0, 1)
    found = sig.against_first([table, per_query.QueryTable(better, table.pools)], ["a", "b"]).comparisons
    assert len(found) == 4 * 3  # 4 headline figures × (all languages + each of 2)
    assert not np.isnan([c.p_randomization_holm for c in found]).any()
    overall = next(c for c in found if (c.setting, c.metric, c.query_lang) == ("mono", "map", "avg"))
    assert overall.significant and overall.ci_low > 0 and overall.diff == pytest.approx(0.05, abs=0.01)
    distance = next(c for c in found if (c.metric, c.query_lang) == ("rank_distance", "avg"))
    assert distance.diff == 0 and not distance.significant


@pytest.fixture
def demo_store(tmp_path):
    from unittest import mock

    store = tmp_path / "store"
    with mock.patch("time.time", lambda: DEMO_NOW):
        return store, build_demo_store(store)


def test_compare_says_which_run_lacks_per_query_results_and_how_to_get_them(demo_store, evaluated):
    store, ids = demo_store
    a, b = ids["mono-baseline"], ids["hybrid-a0.5"]
    with Store(store) as db:
        query_files.write(db.run_dir(a), 1000, True, evaluated[1])
    out = CliRunner().invoke(app, ["compare", a, b, "--store", str(store), "--json"], catch_exceptions=False)
    assert out.exit_code == 0
    message = json.loads(out.stdout)["significance"]["unavailable"]
    assert f"run {b} has no per-query results" in message and "hybtui train --config" in message
    text = CliRunner().invoke(app, ["compare", a, b, "--store", str(store)], catch_exceptions=False).stdout
    assert f"run {b} has no per-query results" in " ".join(text.split())


def test_compare_prints_the_significance_table_and_json(demo_store, evaluated):
    store, ids = demo_store
    a, b = ids["mono-baseline"], ids["hybrid-a0.5"]
    with Store(store) as db:
        query_files.write(db.run_dir(a), 1000, True, evaluated[1])
        query_files.write(db.run_dir(b), 1000, True, evaluated[1])
    out = CliRunner().invoke(app, ["compare", a, b, "--store", str(store), "--json"], catch_exceptions=False)
    tested = json.loads(out.stdout)["significance"]
    assert len(tested["comparisons"]) == 12 and tested["notes"] == []
    assert all(c["p_randomization"] == 1.0 and c["significant"] is False for c in tested["comparisons"])
    text = CliRunner(env={"COLUMNS": "160"}).invoke(app, ["compare", a, b, "--store", str(store)]).stdout
    assert "significance: Δ = run − " + a in text and "Holm over 12" in text
