"""Retrieval metrics over the ranks of the relevant candidates: pure, vectorised numpy.

Every function takes `ranks`, a (queries, K) float array of the 1-based ranks of each
query's relevant candidates in the full ranking, padded with `inf` (a padding slot or a
relevant candidate that was not retrieved both contribute nothing), and `n_relevant`,
the number of relevant candidates of each query (the denominator trec_eval uses).
Definitions follow trec_eval: `map` divides by |R| (not by min(k, |R|) as some AP@k
implementations do), `recall_k` is relevant-in-top-k / |R|, `ndcg_cut_k` uses binary
gains with log2 discounts (`graded_ndcg_at`: gain = the qrels' relevance level, as trec_eval
does for graded judgments such as MIRACL's), `recip_rank` is 1 / rank of the first relevant
candidate.
"""

from __future__ import annotations

import numpy as np


def _sorted_ranks(ranks: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(ranks, dtype=np.float64), axis=1)


def average_precision(ranks: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP per query: mean over relevant candidates of precision at their rank."""
    r = _sorted_ranks(ranks)
    position = np.arange(1, r.shape[1] + 1, dtype=np.float64)[None, :]
    precision = np.where(np.isfinite(r), position / r, 0.0)
    return precision.sum(axis=1) / np.asarray(n_relevant, dtype=np.float64)


def recall_at(ranks: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Fraction of the relevant candidates ranked in the top k."""
    return (np.asarray(ranks) <= k).sum(axis=1) / np.asarray(n_relevant, dtype=np.float64)


def _dcg_at(ranks: np.ndarray, gains: np.ndarray | float, k: int) -> np.ndarray:
    """Σ gain / log2(rank + 1) over the candidates ranked in the top k."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r <= k, gains / np.log2(np.where(r <= k, r, 1.0) + 1.0), 0.0).sum(axis=1)


def ndcg_at(ranks: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """nDCG@k with binary gains: DCG of the relevant in the top k over the ideal DCG."""
    discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    ideal = discounts[np.minimum(np.asarray(n_relevant, dtype=np.int64), k)]
    return _dcg_at(ranks, 1.0, k) / ideal


def graded_ndcg_at(ranks: np.ndarray, gains: np.ndarray, k: int) -> np.ndarray:
    """nDCG@k with graded gains: `gains` (aligned with `ranks`, 0 in padding slots) holds
    each relevant candidate's relevance level; the ideal DCG ranks the query's judged
    gains in decreasing order, retrieved or not (trec_eval `ndcg_cut_k`)."""
    g = np.asarray(gains, dtype=np.float64)
    best = -np.sort(-g, axis=1)[:, :k]
    ideal = (best / np.log2(np.arange(2, best.shape[1] + 2))).sum(axis=1)
    return _dcg_at(ranks, g, k) / ideal


def reciprocal_rank(ranks: np.ndarray, k: int | None = None) -> np.ndarray:
    """1 / rank of the first relevant candidate (0 if it lies beyond the cutoff k)."""
    first = np.asarray(ranks, dtype=np.float64).min(axis=1)
    if k is not None:
        first = np.where(first <= k, first, np.inf)
    return 1.0 / first


def rank_distance(ranks: np.ndarray) -> np.ndarray:
    """Language bias of one query in the multilingual pool: max rank − min rank of its
    relevant candidates (its parallel answers); 0 when it has a single one."""
    r = np.asarray(ranks, dtype=np.float64)
    finite = np.isfinite(r)
    return np.where(finite, r, -np.inf).max(axis=1) - np.where(finite, r, np.inf).min(axis=1)
