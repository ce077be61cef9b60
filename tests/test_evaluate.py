"""The encode-once evaluator: settings, relevance, macro-averages, against trec_eval."""

import numpy as np
import pytest

from hybtui.data import lareqa
from hybtui.evaluation import evaluate
from hybtui.evaluation.evaluate import EncodedSplit, score_benchmark
from hybtui.results import summary


def _unit(rng, n, d=24):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _oracle_embeddings(bench, noise, seed=0):
    """Every parallel answer sentence shares one vector per item; queries are that vector
    plus `noise`. With noise 0 every relevant candidate ties at the top."""
    rng = np.random.default_rng(seed)
    ids = sorted({q for s in bench.splits.values() for q in s.query_ids})
    item_vec = dict(zip(ids, _unit(rng, len(ids))))
    out = {}
    for lang, split in bench.splits.items():
        cands = _unit(rng, len(split.candidates))
        for qid, a in zip(split.query_ids, split.answer):
            cands[a] = item_vec[qid]
        q = np.stack([item_vec[qid] for qid in split.query_ids]) + noise * _unit(rng, len(split.query_ids))
        out[lang] = EncodedSplit(q / np.linalg.norm(q, axis=1, keepdims=True), cands)
    return out


def _items_with_their_own_answer_sentence(bench):
    """Drop items whose answer sentence also answers another item (in any language), so
    one vector per item can sit on exactly its own answer sentences."""
    shared = set()
    for split in bench.splits.values():
        values, counts = np.unique(split.answer, return_counts=True)
        dup = set(values[counts > 1].tolist())
        shared |= {q for q, a in zip(split.query_ids, split.answer.tolist()) if a in dup}
    return lareqa.Benchmark(
        bench.name,
        {
            lang: s.subset(np.array([i for i, q in enumerate(s.query_ids) if q not in shared], dtype=np.int64))
            for lang, s in bench.splits.items()
        },
    )


def test_perfect_embeddings_score_one_and_rank_distance_k_minus_one(shared_data):
    bench = lareqa.load("xquad-r", ["en", "de", "th"], shared_data, allow_download=False).max_queries(60)
    bench = _items_with_their_own_answer_sentence(bench)
    assert len(bench.splits["en"].queries) > 30
    rows = score_benchmark(bench, _oracle_embeddings(bench, noise=0.0))
    top = summary(rows)["xquad-r"]
    assert top["mono"]["map"] == 1.0 and top["cross"]["map"] == 1.0 and top["multi"]["map"] == 1.0
    assert top["multi"]["rank_distance"] == 2.0  # 3 parallel answers at ranks 1, 2, 3
    assert top["multi"]["recall@10"] == 1.0


def test_rows_cover_every_setting_language_and_pair(shared_data):
    bench = lareqa.load("xquad-r", ["en", "de", "th"], shared_data, allow_download=False).max_queries(30)
    rows = score_benchmark(bench, _oracle_embeddings(bench, noise=1.0), seen=["en", "de"])
    keys = {(r.setting, r.query_lang, r.doc_lang) for r in rows if r.query_lang != "avg"}
    assert {k for k in keys if k[0] == "mono"} == {("mono", x, x) for x in ("en", "de", "th")}
    assert len({k for k in keys if k[0] == "cross"}) == 6
    assert {k for k in keys if k[0] == "multi"} == {("multi", x, "all") for x in ("en", "de", "th")}
    seen = {(r.setting, r.query_lang, r.doc_lang): r.seen for r in rows if r.metric == "map" and r.query_lang != "avg"}
    assert seen[("mono", "th", "th")] == "unseen" and seen[("cross", "en", "de")] == "seen"
    assert seen[("cross", "en", "th")] == "mixed" and seen[("multi", "de", "all")] == "seen"
    cross_maps = [r.value for r in rows if r.setting == "cross" and r.metric == "map" and r.query_lang != "avg"]
    assert summary(rows)["xquad-r"]["cross"]["map"] == pytest.approx(np.mean(cross_maps))
    groups = {r.seen for r in rows if r.query_lang == "avg"}
    assert groups == {None, "seen", "unseen", "mixed"}


def test_matches_trec_eval_on_partially_parallel_mlqa_r(shared_data):
    """Brute force: every setting rebuilt as a trec_eval run over the same embeddings."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    bench = lareqa.load("mlqa-r", ["en", "de", "zh"], shared_data, allow_download=False).max_queries(80)
    emb = _oracle_embeddings(bench, noise=1.2, seed=3)  # distinct scores, imperfect retrieval
    ours = {(r.setting, r.query_lang, r.doc_lang, r.metric): r.value for r in score_benchmark(bench, emb)}
    langs = bench.languages
    for x in langs:
        split = bench.splits[x]
        pools = {y: emb[y].candidates for y in langs}
        for y in langs:
            rel = bench.relevant_in(x, y)
            qrels, run = {}, {}
            for i, r in enumerate(rel):
                if r < 0:
                    continue  # only queries whose item exists in y
                qrels[str(i)] = {str(r): 1}
                run[str(i)] = {str(c): float(s) for c, s in enumerate(pools[y] @ emb[x].queries[i])}
            res = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recall_1"}).evaluate(run)
            setting = "mono" if x == y else "cross"
            assert ours[(setting, x, y, "map")] == pytest.approx(np.mean([v["map"] for v in res.values()]), abs=1e-6)
            assert ours[(setting, x, y, "recall@1")] == pytest.approx(
                np.mean([v["recall_1"] for v in res.values()]), abs=1e-6
            )
        pool = np.concatenate([pools[y] for y in langs])
        offsets = np.cumsum([0] + [len(pools[y]) for y in langs])
        qrels, run = {}, {}
        for i in range(len(split.queries)):
            qrels[str(i)] = {
                str(offsets[j] + bench.relevant_in(x, y)[i]): 1
                for j, y in enumerate(langs)
                if bench.relevant_in(x, y)[i] >= 0
            }
            run[str(i)] = {str(c): float(s) for c, s in enumerate(pool @ emb[x].queries[i])}
        res = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recall_10", "ndcg_cut_10"}).evaluate(run)
        assert ours[("multi", x, "all", "map")] == pytest.approx(np.mean([v["map"] for v in res.values()]), abs=1e-6)
        assert ours[("multi", x, "all", "recall@10")] == pytest.approx(
            np.mean([v["recall_10"] for v in res.values()]), abs=1e-6
        )
        assert ours[("multi", x, "all", "ndcg@10")] == pytest.approx(
            np.mean([v["ndcg_cut_10"] for v in res.values()]), abs=1e-6
        )


def test_evaluate_with_a_real_model_encodes_once(shared_data, tiny_encoder, monkeypatch):
    bench = lareqa.load("xquad-r", ["en", "ar"], shared_data, allow_download=False).max_queries(12)
    calls = []
    original = tiny_encoder.encode

    def counting(texts, kind, *args, **kwargs):
        calls.append((kind, len(texts)))
        return original(texts, kind, *args, **kwargs)

    monkeypatch.setattr(tiny_encoder, "encode", counting)
    rows = evaluate.evaluate(tiny_encoder, [bench], seen=["en"], batch_size=16)
    n_cands = sum(len(s.candidates) for s in bench.splits.values())
    assert calls == [("query", 24), ("passage", n_cands)]
    assert all(0.0 <= r.value <= 1.0 for r in rows if r.metric != "rank_distance")
    assert {r.bench for r in rows} == {"xquad-r"}
