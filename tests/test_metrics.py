"""Metrics against hand-computed cases and against trec_eval (pytrec-eval) and ir-measures."""

import numpy as np
import pytest

from hybtui.evaluation import metrics
from hybtui.evaluation.evaluate import rank_relevant

INF = np.inf


def test_one_relevant_hand_computed():
    ranks = np.array([[1.0], [3.0], [10.0], [11.0]])
    n = np.ones(4, dtype=np.int64)
    np.testing.assert_allclose(metrics.average_precision(ranks, n), [1, 1 / 3, 0.1, 1 / 11])
    np.testing.assert_allclose(metrics.recall_at(ranks, n, 1), [1, 0, 0, 0])
    np.testing.assert_allclose(metrics.recall_at(ranks, n, 10), [1, 1, 1, 0])
    np.testing.assert_allclose(metrics.ndcg_at(ranks, n, 10), [1, 1 / np.log2(4), 1 / np.log2(11), 0])
    np.testing.assert_allclose(metrics.reciprocal_rank(ranks), [1, 1 / 3, 0.1, 1 / 11])
    np.testing.assert_allclose(metrics.reciprocal_rank(ranks, k=10), [1, 1 / 3, 0.1, 0])
    np.testing.assert_allclose(metrics.rank_distance(ranks), [0, 0, 0, 0])


def test_several_relevant_hand_computed():
    # relevant at ranks 1, 3, 6 (given out of order, padded with inf)
    ranks = np.array([[6.0, 1.0, 3.0, INF]])
    n = np.array([3])
    ap = (1 / 1 + 2 / 3 + 3 / 6) / 3
    np.testing.assert_allclose(metrics.average_precision(ranks, n), [ap])
    np.testing.assert_allclose(metrics.recall_at(ranks, n, 3), [2 / 3])
    dcg = 1 / np.log2(2) + 1 / np.log2(4) + 1 / np.log2(7)
    idcg = 1 / np.log2(2) + 1 / np.log2(3) + 1 / np.log2(4)
    np.testing.assert_allclose(metrics.ndcg_at(ranks, n, 10), [dcg / idcg])
    np.testing.assert_allclose(metrics.ndcg_at(ranks, n, 2), [1 / (1 + 1 / np.log2(3))])
    np.testing.assert_allclose(metrics.rank_distance(ranks), [5])


def test_relevant_missing_from_ranking_counts_in_denominator():
    # 3 relevant, only 2 retrieved (ranks 2 and 4): AP divides by 3, not 2
    ranks = np.array([[2.0, 4.0, INF]])
    n = np.array([3])
    np.testing.assert_allclose(metrics.average_precision(ranks, n), [(1 / 2 + 2 / 4) / 3])
    np.testing.assert_allclose(metrics.recall_at(ranks, n, 10), [2 / 3])
    np.testing.assert_allclose(metrics.rank_distance(ranks), [2])
    # nothing retrieved at all
    none = np.array([[INF, INF]])
    assert metrics.average_precision(none, np.array([2]))[0] == 0
    assert metrics.reciprocal_rank(none)[0] == 0
    assert metrics.ndcg_at(none, np.array([2]), 10)[0] == 0


def _random_run(seed, n_queries=150, n_docs=4000, max_rel=11):
    rng = np.random.default_rng(seed)
    scores = rng.random((n_queries, n_docs))  # distinct with probability 1
    n_rel = rng.integers(1, max_rel + 1, size=n_queries)
    relevant = np.full((n_queries, max_rel), -1)
    for q in range(n_queries):
        relevant[q, : n_rel[q]] = rng.choice(n_docs, n_rel[q], replace=False)
        # make some relevant documents rank high so the top-k metrics are not all zero
        scores[q, relevant[q, : n_rel[q] // 2 + 1]] += rng.random(n_rel[q] // 2 + 1) * 0.05 + 0.95
    order = np.argsort(-scores, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(1, n_docs + 1)[None, :].repeat(n_queries, 0), axis=1)
    ranks = np.where(relevant >= 0, np.take_along_axis(position, np.maximum(relevant, 0), axis=1), INF)
    return scores, relevant, n_rel, ranks.astype(float)


def _qrels_and_run(scores, relevant):
    qrels = {f"q{q}": {f"d{d}": 1 for d in relevant[q] if d >= 0} for q in range(len(scores))}
    run = {f"q{q}": {f"d{d}": float(s) for d, s in enumerate(scores[q])} for q in range(len(scores))}
    return qrels, run


def test_against_trec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    scores, relevant, n_rel, ranks = _random_run(0)
    qrels, run = _qrels_and_run(scores, relevant)
    measures = {"map", "ndcg_cut_10", "recall_1", "recall_10", "recip_rank"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    ours = {
        "map": metrics.average_precision(ranks, n_rel),
        "ndcg_cut_10": metrics.ndcg_at(ranks, n_rel, 10),
        "recall_1": metrics.recall_at(ranks, n_rel, 1),
        "recall_10": metrics.recall_at(ranks, n_rel, 10),
        "recip_rank": metrics.reciprocal_rank(ranks),
    }
    for name, values in ours.items():
        expected = [ref[f"q{q}"][name] for q in range(len(scores))]
        np.testing.assert_allclose(values, expected, atol=1e-6, err_msg=name)
    assert ours["recall_10"].mean() > 0.05, "the run must exercise the top-k metrics"


def test_against_ir_measures():
    ir_measures = pytest.importorskip("ir_measures")
    scores, relevant, n_rel, ranks = _random_run(1)
    qrels, run = _qrels_and_run(scores, relevant)
    wanted = [ir_measures.AP, ir_measures.nDCG @ 10, ir_measures.R @ 10, ir_measures.RR, ir_measures.RR @ 10]
    ref: dict = {}
    for m in ir_measures.iter_calc(wanted, qrels, run):
        ref[(str(m.measure), m.query_id)] = m.value
    ours = {
        "AP": metrics.average_precision(ranks, n_rel),
        "nDCG@10": metrics.ndcg_at(ranks, n_rel, 10),
        "R@10": metrics.recall_at(ranks, n_rel, 10),
        "RR": metrics.reciprocal_rank(ranks),
        "RR@10": metrics.reciprocal_rank(ranks, k=10),
    }
    for name, values in ours.items():
        expected = [ref[(name, f"q{q}")] for q in range(len(scores))]
        np.testing.assert_allclose(values, expected, atol=1e-6, err_msg=name)


def _reference_ranks(scores, relevant, offsets):
    """Ranks by a full stable argsort, pooled and within each relevant's own segment."""
    pooled = np.full(relevant.shape, INF)
    own = np.full(relevant.shape, INF)
    for q in range(len(scores)):
        order = list(np.argsort(-scores[q], kind="stable"))
        for j, d in enumerate(relevant[q]):
            if d < 0:
                continue
            pooled[q, j] = order.index(d) + 1
            seg = scores[q, offsets[j] : offsets[j + 1]]
            own[q, j] = list(np.argsort(-seg, kind="stable")).index(d - offsets[j]) + 1
    return pooled, own


@pytest.mark.parametrize("with_ties", [False, True])
def test_rank_relevant_matches_a_stable_full_sort(with_ties):
    rng = np.random.default_rng(7)
    offsets = np.array([0, 40, 90, 120])
    scores = rng.random((30, 120)).astype(np.float32)
    if with_ties:  # duplicated candidates (same text twice) and coarse scores tie exactly
        scores = np.round(scores * 8) / 8
    relevant = np.stack([rng.integers(a, b, 30) for a, b in zip(offsets[:-1], offsets[1:])], axis=1)
    relevant[rng.random(relevant.shape) < 0.2] = -1  # some items lack a language
    pooled, own = rank_relevant(scores, relevant, offsets)
    ref_pooled, ref_own = _reference_ranks(scores, relevant, offsets)
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(own, ref_own)
