"""Encode-once evaluation of the LAReQA protocol: mono, cross and multi from cached embeddings.

Every query and candidate of every language is encoded exactly once. Then, per query
language X, one matrix product scores X's queries against the candidates of all
languages; the mono (pool X), cross (pool Y ≠ X) and multi (all pools together)
settings are column slices of that one score matrix, so scoring 11 languages costs 11
matrix products. Ranks are exact over the full pool (exact search), with ties broken by
candidate order so results are deterministic.

Corpus benchmarks (MIRACL, BEIR folders) are monolingual retrieval over corpora too large
for that: per language the corpus is encoded in streamed chunks (or read from the
embedding cache), searched to depth 100 with FAISS (hybtui.evaluation.retrieval), and scored with
trec_eval's nDCG@10 (graded), Recall@100 and MRR@10 in the `mono` setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybtui.data.lareqa import Benchmark
from hybtui.data.miracl import CorpusBenchmark
from hybtui.evaluation import metrics, per_query, retrieval
from hybtui.modeling.encoder import EncodeProgress, Encoder
from hybtui.results import POOL_ALL, ResultRow, macro_averages, seen_label

#: metric names per setting, in report order
SETTING_METRICS = {
    "mono": ("map", "recall@1", "ndcg@10", "mrr"),
    "cross": ("map", "recall@1", "ndcg@10", "mrr"),
    "multi": ("map", "recall@10", "ndcg@10", "rank_distance"),
}
#: metric names of corpus benchmarks (setting mono): MIRACL's official two, then MRR@10
CORPUS_METRICS = ("ndcg@10", "recall@100", "mrr@10")
#: how deep a corpus is searched: the deepest cutoff of CORPUS_METRICS
SEARCH_DEPTH = 100
#: Called as on_search(bench, lang, report) after each corpus search.
SearchCallback = Callable[[str, str, retrieval.SearchReport], None]
#: Called with each benchmark's per-query scores once it is scored.
QueriesCallback = Callable[[per_query.QueryTable], None]


@dataclass(frozen=True)
class EncodedSplit:
    queries: np.ndarray
    candidates: np.ndarray


def encode_benchmark(
    encoder: Encoder,
    bench: Benchmark,
    batch_size: int = 64,
    bf16: bool = False,
    progress: Callable[[str], EncodeProgress] | None = None,
) -> dict[str, EncodedSplit]:
    """Encode all queries (one call) and all candidates (one call) of every language.

    One call per kind lets length-sorted batching work across languages.
    `progress(label)` returns the per-call progress callback.
    """
    splits = list(bench.splits.values())
    query_texts = [q for s in splits for q in s.queries]
    cand_texts = [c for s in splits for c in s.candidates]
    q_emb = encoder.encode(query_texts, "query", batch_size, bf16, progress and progress(f"{bench.name} queries"))
    c_emb = encoder.encode(cand_texts, "passage", batch_size, bf16, progress and progress(f"{bench.name} candidates"))
    out, qi, ci = {}, 0, 0
    for s in splits:
        out[s.lang] = EncodedSplit(q_emb[qi : qi + len(s.queries)], c_emb[ci : ci + len(s.candidates)])
        qi += len(s.queries)
        ci += len(s.candidates)
    return out


def rank_relevant(scores: np.ndarray, relevant: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of each query's relevant candidates, in the whole pool and in their own language.

    `scores` is (queries, pool) over the candidates of all languages laid out in
    segments `offsets[j]:offsets[j+1]`; `relevant[:, j]` is the pool index of the query's
    relevant candidate in segment j, or −1. Returns two (queries, segments) float arrays
    of 1-based ranks (inf where there is no relevant candidate): in the pooled ranking
    (the multi setting) and within segment j alone (mono / cross).

    A candidate outranks a relevant one if it scores higher, or equally with a smaller
    index (a stable descending sort), so exact duplicates rank deterministically. One
    threshold comparison per segment counts, per segment, everything scoring above that
    relevant candidate; both kinds of rank are sums of those counts.
    """
    valid = relevant >= 0
    thresholds = np.where(valid, np.take_along_axis(scores, np.maximum(relevant, 0), axis=1), np.inf)
    pooled = np.full(relevant.shape, np.inf)
    own = np.full(relevant.shape, np.inf)
    for j in range(relevant.shape[1]):
        rows = np.flatnonzero(valid[:, j])
        full = len(rows) == len(scores)  # avoid copying the score matrix when every query has one
        s, t = (scores if full else scores[rows]), thresholds[rows, j : j + 1]
        higher = s > t
        for i in np.flatnonzero(np.count_nonzero(s == t, axis=1) > 1):  # rare: exact score ties
            higher[i] |= (s[i] == t[i]) & (np.arange(s.shape[1]) < relevant[rows[i], j])
        pooled[rows, j] = np.count_nonzero(higher, axis=1) + 1.0
        own[rows, j] = np.count_nonzero(higher[:, offsets[j] : offsets[j + 1]], axis=1) + 1.0
    return pooled, own


def _per_query_values(setting: str, ranks: np.ndarray, n_rel: np.ndarray) -> dict[str, np.ndarray]:
    """Each query's scores in a setting: its reported metrics, and its reciprocal rank in all."""
    values = {
        "map": metrics.average_precision(ranks, n_rel),
        "mrr": metrics.reciprocal_rank(ranks),
        "ndcg@10": metrics.ndcg_at(ranks, n_rel, 10),
    }
    if setting == "multi":
        values["recall@10"] = metrics.recall_at(ranks, n_rel, 10)
        values["rank_distance"] = metrics.rank_distance(ranks)
    else:
        values["recall@1"] = metrics.recall_at(ranks, n_rel, 1)
    return values


def _means(setting: str, values: dict[str, np.ndarray]) -> dict[str, float]:
    """A setting's reported figures: the means of its per-query scores."""
    return {name: float(values[name].mean()) for name in SETTING_METRICS[setting]}


def score_benchmark(
    bench: Benchmark,
    embeddings: dict[str, EncodedSplit],
    seen: Iterable[str] | None = None,
    on_queries: QueriesCallback | None = None,
) -> list[ResultRow]:
    """All per-language / per-pair rows of mono, cross and multi, then their macro-averages;
    ``on_queries`` hears the per-query scores the rows are means of.

    Query languages are scored in parallel threads (numpy releases the GIL in the
    comparisons and counts that dominate the cost).
    """
    seen_set = frozenset(seen) if seen is not None else None
    langs = bench.languages
    offsets = np.cumsum([0] + [len(bench.splits[lang].candidates) for lang in langs])
    pool = np.concatenate([embeddings[lang].candidates for lang in langs])

    def score_query_language(x: str) -> tuple[list[ResultRow], list[per_query.QueryTable]]:
        scores = embeddings[x].queries @ pool.T
        relevant = np.stack([bench.relevant_in(x, y) for y in langs], axis=1)
        pooled_ranks, own_ranks = rank_relevant(scores, np.where(relevant >= 0, relevant + offsets[:-1], -1), offsets)
        ids = np.array(bench.splits[x].query_ids, dtype=str)
        rows, blocks = [], []
        for j, y in enumerate(langs):
            has = relevant[:, j] >= 0
            if not has.any():
                continue
            setting = "mono" if x == y else "cross"
            values = _per_query_values(setting, own_ranks[has, j : j + 1], np.ones(int(has.sum()), dtype=np.int64))
            blocks.append(per_query.block(bench.name, setting, x, y, ids[has], values))
            rows += [
                ResultRow(bench.name, setting, x, y, m, v, seen_label({x, y}, seen_set))
                for m, v in _means(setting, values).items()
            ]
        values = _per_query_values("multi", pooled_ranks, (relevant >= 0).sum(axis=1))
        blocks.append(per_query.block(bench.name, "multi", x, POOL_ALL, ids, values))
        rows += [
            ResultRow(bench.name, "multi", x, POOL_ALL, m, v, seen_label({x}, seen_set))
            for m, v in _means("multi", values).items()
        ]
        return rows, blocks

    with ThreadPoolExecutor(max_workers=min(len(langs), os.cpu_count() or 1)) as pool_executor:
        scored = list(pool_executor.map(score_query_language, langs))
    if on_queries:
        table = per_query.concat(block for _, blocks in scored for block in blocks)
        sizes = {lang: len(bench.splits[lang].candidates) for lang in langs}
        on_queries(per_query.QueryTable(table.columns, {bench.name: sizes}))
    rows = [row for per_lang, _ in scored for row in per_lang]
    return rows + macro_averages(rows, seen_set is not None)


def ranks_in_results(found: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based ranks of each query's relevant corpus rows in its search results `found`
    (queries, depth); inf where one was not retrieved, is missing from the corpus (−1) or
    is a padding slot."""
    match = (relevant[:, :, None] == found[:, None, :]) & (relevant[:, :, None] >= 0)
    return np.where(match.any(axis=2), match.argmax(axis=2) + 1.0, np.inf)


def corpus_query_values(ranks: np.ndarray, grades: np.ndarray) -> dict[str, np.ndarray]:
    """Each query's nDCG@10 (gain = relevance level), Recall@100 and MRR@10."""
    return {
        "ndcg@10": metrics.graded_ndcg_at(ranks, grades, 10),
        "recall@100": metrics.recall_at(ranks, (grades > 0).sum(axis=1), 100),
        "mrr@10": metrics.reciprocal_rank(ranks, 10),
    }


def corpus_metric_values(ranks: np.ndarray, grades: np.ndarray) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the queries."""
    values = corpus_query_values(ranks, grades)
    return {name: float(values[name].mean()) for name in CORPUS_METRICS}


@dataclass(frozen=True)
class CorpusSearch:
    """How a corpus benchmark is searched: the index (exact, hnsw, ivf), where corpus
    embeddings are cached (None: nowhere), and who hears of each language's search."""

    index: str = "exact"
    cache_dir: Path | None = None
    on_search: SearchCallback | None = None


EXACT = CorpusSearch()


def evaluate_corpus_benchmark(
    encoder: Encoder,
    bench: CorpusBenchmark,
    seen: Iterable[str] | None = None,
    batch_size: int = 64,
    bf16: bool = False,
    progress: Callable[[str], EncodeProgress] | None = None,
    search: CorpusSearch = EXACT,
    on_queries: QueriesCallback | None = None,
) -> list[ResultRow]:
    """Per language: corpus embeddings (streamed, cached in ``search.cache_dir`` when given),
    query embeddings, a top-100 search with ``search.index``, and the metrics against the qrels
    (``on_queries`` hears them per query)."""
    seen_set = frozenset(seen) if seen is not None else None
    rows: list[ResultRow] = []
    blocks: list[per_query.QueryTable] = []
    for lang, split in bench.splits.items():
        label = f"{bench.name} {lang}"
        passages, cached = retrieval.corpus_embeddings(
            encoder, split.corpus, batch_size, bf16, progress and progress(f"{label} passages"), search.cache_dir
        )
        if cached and progress:
            progress(f"{label} passages (cached)")(len(passages), len(passages))
        queries = encoder.encode(split.queries, "query", batch_size, bf16, progress and progress(f"{label} queries"))
        _, found, report = retrieval.search(passages, queries, SEARCH_DEPTH, search.index)
        if search.on_search:
            search.on_search(bench.name, lang, report)
        values = corpus_query_values(ranks_in_results(found, split.relevant), split.grades)
        blocks.append(per_query.block(bench.name, "mono", lang, lang, split.query_ids, values))
        seen = seen_label({lang}, seen_set)
        rows += [ResultRow(bench.name, "mono", lang, lang, m, float(values[m].mean()), seen) for m in CORPUS_METRICS]
    if on_queries:
        sizes = {lang: split.corpus.size for lang, split in bench.splits.items()}
        on_queries(per_query.QueryTable(per_query.concat(blocks).columns, {bench.name: sizes}))
    return rows + macro_averages(rows, seen_set is not None)


def evaluate(
    encoder: Encoder,
    benches: Iterable[Benchmark | CorpusBenchmark],
    seen: Iterable[str] | None = None,
    batch_size: int = 64,
    bf16: bool = False,
    progress: Callable[[str], EncodeProgress] | None = None,
    *,
    index: str = "exact",
    cache_dir: Path | None = None,
    on_search: SearchCallback | None = None,
    on_queries: QueriesCallback | None = None,
) -> list[ResultRow]:
    """Encode and score each benchmark; the result rows of all of them (``on_queries`` hears
    each benchmark's per-query scores).

    Corpus benchmarks are searched with `index` (exact, hnsw, ivf), their embeddings kept
    in `cache_dir` when one is given (training leaves it out: its weights change).
    """
    retrieval.check_index(index)
    rows: list[ResultRow] = []
    for bench in benches:
        if isinstance(bench, CorpusBenchmark):
            search = CorpusSearch(index, cache_dir, on_search)
            rows += evaluate_corpus_benchmark(encoder, bench, seen, batch_size, bf16, progress, search, on_queries)
            continue
        embeddings = encode_benchmark(encoder, bench, batch_size, bf16, progress)
        rows += score_benchmark(bench, embeddings, seen, on_queries)
    return rows
