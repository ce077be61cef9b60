"""MIRACL / BEIR corpus evaluation: loading, metrics against trec_eval, the embedding cache,
approximate search, the CLI, and every bad input — on fixtures written here.

The fixture's relevance is known by construction: each query is a few words no other
text uses, and its relevant passages contain them, so a bag-of-words encoder must put
every relevant passage on top.
"""

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from hybtui.data import benchmarks, miracl
from hybtui.errors import HybtuiError
from hybtui.evaluation import evaluate, retrieval
from hybtui.results import summary

LANGS = ("sw", "yo")
PASSAGES = 1200
QUERIES = 24
MISSING_DOC = "999999#0"


@dataclass
class Truth:
    """What the fixture holds for one language, for the tests to check against."""

    docids: list[str]
    qrels: dict[str, dict[str, int]]  # as written, judged non-relevant and missing documents included
    scored: list[str]  # query ids with a relevant passage, in topics order


def _write_lines(path, lines, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def write_language(root, lang, seed, hub_layout=False):
    """One language in the MIRACL layout under `root`: two gzipped corpus shards, topics,
    TREC qrels with grades 1–2, judged non-relevant passages, one relevant passage missing
    from the corpus (yo) and one query without judgments."""
    rng = np.random.default_rng(seed)
    vocab = [f"{lang}{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(vocab, 12)) for _ in range(PASSAGES)]
    docids = [f"{100 + i // 3}#{i % 3}" for i in range(PASSAGES)]
    topics, qrels = [], {}
    for q in range(QUERIES):
        qid = f"{lang}-{q}"
        query = " ".join(f"k{q}x{j}{lang}" for j in range(4))
        topics.append(f"{qid}\t{query}")
        rows = rng.choice(PASSAGES, 3, replace=False)
        relevant = rows[: 1 + q % 3]
        for r in relevant:
            texts[r] = f"{query} {texts[r]}"
        qrels[qid] = {docids[r]: 2 if i == 0 and q % 2 else 1 for i, r in enumerate(relevant)}
        qrels[qid].update({docids[r]: 0 for r in rng.choice(PASSAGES, 2, replace=False) if r not in relevant})
    if lang == "yo":
        qrels["yo-0"][MISSING_DOC] = 1
    topics.append(f"{lang}-unjudged\tno judgments for this one")
    folder = root / f"miracl-v1.0-{lang}" if hub_layout else root / lang
    tsv = (
        (lambda kind: folder / kind / f"{kind}.miracl-v1.0-{lang}-dev.tsv")
        if hub_layout
        else (lambda kind: folder / f"{kind}.miracl-v1.0-{lang}-dev.tsv")
    )
    _write_lines(tsv("topics"), topics)
    _write_lines(tsv("qrels"), [f"{q}\tQ0\t{d}\t{r}" for q, docs in qrels.items() for d, r in docs.items()])
    corpus_dir = (root if hub_layout else folder) / f"miracl-corpus-v1.0-{lang}"
    rows = [json.dumps({"docid": d, "title": f"T{lang}", "text": t}) for d, t in zip(docids, texts)]
    half = PASSAGES // 2
    _write_lines(corpus_dir / "docs-0.jsonl.gz", rows[:half], gz=True)
    _write_lines(corpus_dir / "docs-1.jsonl.gz", rows[half:], gz=True)
    return Truth(docids, qrels, [f"{lang}-{q}" for q in range(QUERIES)])


@pytest.fixture(scope="session")
def pristine_miracl(tmp_path_factory):
    root = tmp_path_factory.mktemp("miracl") / "data"
    return root, {lang: write_language(root / "miracl", lang, seed) for seed, lang in enumerate(LANGS)}


@pytest.fixture
def miracl_data(pristine_miracl, tmp_path):
    """A writable DIR with DIR/miracl/{sw,yo}/…, and what each language holds."""
    source, truth = pristine_miracl
    shutil.copytree(source, tmp_path / "data")
    return tmp_path / "data", truth


def _load(root, spec="miracl:sw,yo"):
    (selection,) = benchmarks.parse_eval_spec(spec)
    return benchmarks.load(selection, root, allow_download=False)


class BagOfWords:
    """A test encoder whose cosine is word overlap: the fixture's relevant passages win."""

    dim = 512

    def encode(self, texts, kind, batch_size=64, bf16=False, progress=None):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        if progress:
            progress(len(texts), len(texts))
        return out / np.linalg.norm(out, axis=1, keepdims=True)


# ---------------------------------------------------------------- loading


def test_loader_joins_topics_qrels_and_a_sharded_gzipped_corpus(miracl_data):
    root, truth = miracl_data
    bench = _load(root)
    assert isinstance(bench, miracl.CorpusBenchmark) and bench.languages == LANGS
    for lang, split in bench.splits.items():
        t = truth[lang]
        assert split.query_ids == tuple(t.scored) and split.corpus.size == PASSAGES
        assert [p.name for p in split.corpus.files] == ["docs-0.jsonl.gz", "docs-1.jsonl.gz"]
        for i, qid in enumerate(split.query_ids):
            judged = {t.docids[r]: g for r, g in zip(split.relevant[i], split.grades[i]) if g > 0 and r >= 0}
            expected = {d: g for d, g in t.qrels[qid].items() if g > 0 and d != MISSING_DOC}
            assert judged == expected
    assert (bench.splits["yo"].grades[0] > 0).sum() == 2  # one relevant in the corpus + the missing one
    warnings = "\n".join(bench.warnings)
    assert "miracl/yo: 1 of" in warnings and MISSING_DOC in warnings and "never retrieved" in warnings
    assert "1 of 25 queries have no relevant passage" in warnings
    texts = [t for chunk in bench.splits["sw"].corpus.texts(400) for t in chunk]
    assert len(texts) == PASSAGES and texts[0].startswith("Tsw ")


def test_hub_layout_and_uncompressed_shards_load_the_same(tmp_path, miracl_data):
    root, _ = miracl_data
    hub = tmp_path / "hub"
    write_language(hub / "miracl", "sw", 0, hub_layout=True)  # miracl-v1.0-sw/topics/… + miracl-corpus-v1.0-sw/
    shard = hub / "miracl/miracl-corpus-v1.0-sw/docs-1.jsonl.gz"
    shard.with_suffix("").write_bytes(gzip.decompress(shard.read_bytes()))  # an unpacked copy wins over its .gz
    a, b = _load(root, "miracl:sw").splits["sw"], _load(hub, "miracl:sw").splits["sw"]
    assert [p.name for p in b.corpus.files] == ["docs-0.jsonl.gz", "docs-1.jsonl"]
    assert a.query_ids == b.query_ids and np.array_equal(a.relevant, b.relevant)
    assert a.corpus.sha256 != b.corpus.sha256  # different bytes, different cache identity


def test_beir_folders(tmp_path, miracl_data):
    """The same data as BEIR folders: one folder per language, or a single folder."""
    root, truth = miracl_data
    bench = _load(root)
    beir = tmp_path / "beir-set"
    for lang in LANGS:
        split, t = bench.splits[lang], truth[lang]
        rows = [
            json.dumps({"_id": d, "title": "", "text": text})
            for d, text in zip(t.docids, (x for chunk in split.corpus.texts(500) for x in chunk))
        ]
        _write_lines(beir / lang / "corpus.jsonl", rows)
        _write_lines(
            beir / lang / "queries.jsonl",
            [json.dumps({"_id": q, "text": text}) for q, text in zip(split.query_ids, split.queries)],
        )
        _write_lines(
            beir / lang / "qrels/test.tsv",
            ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, docs in t.qrels.items() for d, r in docs.items()],
        )
    (selection,) = benchmarks.parse_eval_spec(f"beir:{beir}:yo")
    assert (selection.path, selection.languages) == (str(beir), ("yo",))
    multi = benchmarks.load(selection, None)
    assert multi.name == "beir-set" and multi.languages == ("yo",)
    assert np.array_equal(multi.splits["yo"].relevant, bench.splits["yo"].relevant)
    single = benchmarks.load(benchmarks.parse_eval_spec(f"beir:{beir / 'sw'}")[0], None)
    assert single.name == "sw" and single.languages == (miracl.UNDETERMINED,)
    assert single.splits["und"].query_ids == bench.splits["sw"].query_ids
    with pytest.raises(HybtuiError, match="available: sw, yo"):
        benchmarks.load(benchmarks.parse_eval_spec(f"beir:{beir}:th")[0], None)


def test_eval_spec_grammar_for_corpora():
    got = benchmarks.parse_eval_spec(["xquad-r:en,miracl:sw,th", "beir:/data/a:en,beir:/data/b"])
    assert [(s.name, s.languages, s.path) for s in got] == [
        ("xquad-r", ("en",), None),
        ("miracl", ("sw", "th"), None),
        ("beir", ("en",), "/data/a"),
        ("beir", None, "/data/b"),
    ]
    assert [str(s) for s in got] == ["xquad-r:en", "miracl:sw,th", "beir:/data/a:en", "beir:/data/b"]
    assert benchmarks.parse_eval_spec("miracl")[0].languages is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("miracl:sw,xx", "miracl: unknown language.*'xx'.*available: ar, bn, de"),
        ("miracl:", "empty language list"),
        ("beir", "names no folder"),
        ("beir:/data/a,beir:/data/a", "'beir:/data/a' is selected twice"),
        ("miracl,sw", "selects all its languages"),
    ],
)
def test_bad_corpus_eval_specs(spec, message):
    with pytest.raises(HybtuiError, match=message):
        benchmarks.parse_eval_spec(spec)


def _break_line(number, old, new):
    """An edit replacing `old` by `new` in line `number` (1-based) only."""

    def edit(text):
        lines = text.splitlines(keepends=True)
        lines[number - 1] = lines[number - 1].replace(old, new)
        return "".join(lines)

    return edit


def _edit(path, edit):
    text = (gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()).decode()
    data = edit(text).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        (
            "sw/qrels.miracl-v1.0-sw-dev.tsv",
            lambda t: t.replace("\tQ0\t", " ", 1),
            r"qrels.miracl-v1.0-sw-dev.tsv:1: expected 'query-id Q0 doc-id relevance'",
        ),
        (
            "sw/qrels.miracl-v1.0-sw-dev.tsv",
            lambda t: t + "sw-1 Q0 100#1 yes\n",
            r"qrels.miracl-v1.0-sw-dev.tsv:\d+: expected",
        ),
        (
            "sw/topics.miracl-v1.0-sw-dev.tsv",
            _break_line(3, "\t", " "),
            r"topics.miracl-v1.0-sw-dev.tsv:3: expected 'query-id<TAB>query text'",
        ),
        ("sw/topics.miracl-v1.0-sw-dev.tsv", lambda t: t + t.splitlines()[0] + "\n", "sw-0 appears twice"),
        ("sw/topics.miracl-v1.0-sw-dev.tsv", lambda t: "", "miracl/sw: no queries"),
        (
            "sw/topics.miracl-v1.0-sw-dev.tsv",
            lambda t: "sw-unjudged\tonly this one\n",
            "miracl/sw: no queries to score",
        ),
        ("sw/miracl-corpus-v1.0-sw/docs-1.jsonl.gz", _break_line(7, '"}', ""), r"docs-1.jsonl.gz:7: not valid JSON"),
        (
            "sw/miracl-corpus-v1.0-sw/docs-0.jsonl.gz",
            _break_line(5, '"docid"', '"id"'),
            r"docs-0.jsonl.gz:5: field 'docid' is missing",
        ),
    ],
)
def test_bad_files_are_named_with_their_line(miracl_data, file, edit, message):
    root, _ = miracl_data
    _edit(root / "miracl" / file, edit)
    with pytest.raises(HybtuiError, match=message):
        _load(root, "miracl:sw")


def test_truncated_gzip_shard(miracl_data):
    root, _ = miracl_data
    shard = root / "miracl/sw/miracl-corpus-v1.0-sw/docs-0.jsonl.gz"
    shard.write_bytes(shard.read_bytes()[:-200])
    with pytest.raises(HybtuiError, match="docs-0.jsonl.gz: not a readable gzip file"):
        _load(root, "miracl:sw")


def test_missing_files_say_where_to_put_them(tmp_path, miracl_data):
    root, _ = miracl_data
    shutil.rmtree(root / "miracl/sw/miracl-corpus-v1.0-sw")
    (selection,) = benchmarks.parse_eval_spec("miracl:sw")
    with pytest.raises(HybtuiError) as err:  # HF_HUB_OFFLINE=1: the hub is tried and fails
        benchmarks.load(selection, root)
    message = str(err.value)
    assert "miracl-corpus-v1.0-sw/docs-*.jsonl.gz" in message and f"{root}/miracl/sw/" in message
    assert "topics.miracl" not in message and "miracl/miracl-corpus" in message and "hub" in message


# ---------------------------------------------------------------- scoring


def test_known_relevance_is_found_and_scored(miracl_data):
    root, _ = miracl_data
    bench = _load(root)
    rows = evaluate.evaluate(BagOfWords(), [bench], seen=["sw"])
    got = {(r.query_lang, r.metric, r.seen): r.value for r in rows}
    assert got[("sw", "recall@100", "seen")] == 1.0 and got[("sw", "mrr@10", "seen")] == 1.0
    # yo-0's second relevant passage is missing from the corpus: it can never be retrieved
    assert got[("yo", "recall@100", "unseen")] == pytest.approx((QUERIES - 1 + 0.5) / QUERIES)
    assert got[("yo", "mrr@10", "unseen")] == 1.0
    assert {r.setting for r in rows} == {"mono"} and all(r.doc_lang == r.query_lang for r in rows)
    assert got[("avg", "ndcg@10", None)] == pytest.approx(
        np.mean([got[(x, "ndcg@10", s)] for x, s in (("sw", "seen"), ("yo", "unseen"))])
    )
    assert summary(rows)["miracl"]["mono"].keys() == set(evaluate.CORPUS_METRICS)


def test_metrics_match_trec_eval(miracl_data, tiny_encoder, tmp_path):
    """Our ranking (the tiny model's: imperfect) scored by us and by trec_eval, graded
    relevance and a relevant passage missing from the corpus (yo) included."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    root, truth = miracl_data
    bench = _load(root, "miracl:yo")
    cache = tmp_path / "embeddings"
    rows = {(r.query_lang, r.metric): r.value for r in evaluate.evaluate(tiny_encoder, [bench], cache_dir=cache)}
    for lang, split in bench.splits.items():
        passages, _ = retrieval.corpus_embeddings(tiny_encoder, split.corpus, cache_dir=cache)
        queries = tiny_encoder.encode(split.queries, "query")
        _, found, _ = retrieval.search(passages, queries, evaluate.SEARCH_DEPTH)
        ranks = evaluate.ranks_in_results(found, split.relevant)
        ours = evaluate.corpus_metric_values(ranks, split.grades)
        assert ours == {m: rows[(lang, m)] for m in evaluate.CORPUS_METRICS}
        qrels = {q: truth[lang].qrels[q] for q in split.query_ids}
        docids = truth[lang].docids
        run = {q: {docids[r]: float(100 - i) for i, r in enumerate(found[n])} for n, q in enumerate(split.query_ids)}
        top10 = {q: dict(list(docs.items())[:10]) for q, docs in run.items()}
        full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
        cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
        assert ours["ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in full.values()]), abs=1e-9)
        assert ours["recall@100"] == pytest.approx(np.mean([v["recall_100"] for v in full.values()]), abs=1e-9)
        assert ours["mrr@10"] == pytest.approx(np.mean([v["recip_rank"] for v in cut.values()]), abs=1e-9)
        assert 0 < ours["ndcg@10"] < 1  # a ranking that is neither perfect nor empty


def test_embedding_cache_is_reused_and_invalidated(miracl_data, tiny_encoder, tmp_path, monkeypatch):
    root, _ = miracl_data
    cache = tmp_path / "embeddings"
    corpus = _load(root, "miracl:sw").splits["sw"].corpus
    first, cached = retrieval.corpus_embeddings(tiny_encoder, corpus, cache_dir=cache)
    assert not cached and first.shape == (PASSAGES, tiny_encoder.dim) and first.dtype == np.float16
    assert [p.suffix for p in cache.rglob("*") if p.is_file()] == [".npy"]  # no partial file left behind
    calls = []
    monkeypatch.setattr(tiny_encoder, "encode", lambda *a, **k: calls.append(a) or pytest.fail("re-encoded"))
    again, cached = retrieval.corpus_embeddings(tiny_encoder, corpus, cache_dir=cache)
    assert cached and not calls and np.array_equal(first, again)
    monkeypatch.undo()
    _edit(corpus.files[1], lambda t: t.replace("sw1", "sw2", 1))  # one word of one passage
    changed = _load(root, "miracl:sw").splits["sw"].corpus
    assert changed.sha256 != corpus.sha256
    _, cached = retrieval.corpus_embeddings(tiny_encoder, changed, cache_dir=cache)
    assert not cached
    assert len(list(cache.rglob("*.npy"))) == 2
    # the key's other half: another precision (or other weights) is another encoder
    assert retrieval.encoder_fingerprint(tiny_encoder, True) != retrieval.encoder_fingerprint(tiny_encoder, False)


def test_exact_search_streams_blocks_without_changing_results(monkeypatch):
    rng = np.random.default_rng(0)
    passages = rng.standard_normal((2500, 16)).astype(np.float16)
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    monkeypatch.setattr(retrieval, "SEARCH_BLOCK", 300)
    scores, rows = retrieval.exact_search(passages, queries, 100)
    brute = queries @ passages.astype(np.float32).T
    assert np.array_equal(rows, np.argsort(-brute, axis=1, kind="stable")[:, :100])
    np.testing.assert_allclose(scores, np.take_along_axis(brute, rows, axis=1), rtol=1e-5)
    _, rows = retrieval.exact_search(passages[:30], queries, 100)  # fewer passages than k
    assert (rows[:, :30] >= 0).all() and (rows[:, 30:] == -1).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_reports_its_recall_against_exact(kind):
    """Clustered vectors (as real embeddings are): an easy case, so recall must be high."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((50, 32))
    passages = centres[rng.integers(0, 50, 5000)] + 0.3 * rng.standard_normal((5000, 32))
    passages = (passages / np.linalg.norm(passages, axis=1, keepdims=True)).astype(np.float16)
    queries = passages[rng.choice(5000, 200, replace=False)].astype(np.float32) + 0.05 * rng.standard_normal((200, 32))
    _, rows, report = retrieval.search(passages, queries, 100, kind)
    _, exact_rows, exact = retrieval.search(passages, queries, 100)
    assert report.index == kind and report.passages == 5000 and report.queries == 200
    assert report.recall_vs_exact == pytest.approx(retrieval.recall_of(rows, exact_rows))
    assert report.recall_vs_exact > 0.9 and report.build_s > 0 and report.exact_search_s > 0
    assert exact.recall_vs_exact is None and exact.exact_search_s is None
    with pytest.raises(HybtuiError, match="unknown index 'flat'"):
        retrieval.search(passages, queries, 10, "flat")


# ---------------------------------------------------------------- the command line


def test_cli_eval_miracl_json_then_cached_table(miracl_data, isolated_cache, monkeypatch):
    """In process (typer's runner) to spare two interpreter starts; the user's view of errors
    is checked with real subprocesses below."""
    from typer.testing import CliRunner

    from hybtui.cli.app import app

    monkeypatch.setenv("COLUMNS", "200")
    root, _ = miracl_data
    args = ["eval", "--model", "tiny", "--eval", "miracl:sw,yo", "--data-dir", str(root), "--seen", "sw"]
    proc = CliRunner().invoke(app, [*args, "--index", "ivf", "--json"])
    assert proc.exit_code == 0, proc.output
    payload = json.loads(proc.stdout)
    rows = payload["results"]
    assert {(r["bench"], r["setting"]) for r in rows} == {("miracl", "mono")}
    assert {(r["query_lang"], r["doc_lang"], r["seen"]) for r in rows if r["metric"] == "ndcg@10"} == {
        ("sw", "sw", "seen"),
        ("yo", "yo", "unseen"),
        ("avg", "avg", None),
        ("avg", "avg", "seen"),
        ("avg", "avg", "unseen"),
    }
    assert set(payload["summary"]["miracl"]["mono"]) == {"ndcg@10", "recall@100", "mrr@10"}
    assert set(payload["search"]["miracl"]) == {"sw", "yo"}
    ivf = payload["search"]["miracl"]["sw"]
    assert ivf["index"] == "ivf" and 0 < ivf["recall_vs_exact"] <= 1 and ivf["passages"] == PASSAGES
    assert any("relevant passages are not in the corpus" in w for w in payload["warnings"])
    entries = list((isolated_cache / "hybtui/embeddings").rglob("*.npy"))
    assert len(entries) == 2  # one per language
    stamps = [e.stat().st_mtime_ns for e in entries]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "ndcg@10" in table.stdout and "exact" in table.stdout and "avg" in table.stdout
    assert "warning: miracl/yo: 1 of" in table.stderr
    assert [e.stat().st_mtime_ns for e in entries] == stamps  # reused, not rewritten


def test_cli_rejects_bad_input_before_writing_anything(miracl_data, isolated_cache):
    root, _ = miracl_data
    qrels = root / "miracl/yo/qrels.miracl-v1.0-yo-dev.tsv"
    qrels.write_text(qrels.read_text() + "yo-3 Q0\n")
    for extra, message in (
        (["--eval", "miracl:sw,yo"], f"{qrels}:"),
        (["--eval", "miracl:sw", "--index", "flat"], "unknown index 'flat'"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "hybtui", "eval", "--model", "tiny", "--data-dir", str(root), *extra],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == "" and not (isolated_cache / "hybtui/embeddings").exists()


def test_training_evaluates_on_miracl_and_records_the_rows(miracl_data, shared_data, tmp_path, monkeypatch):
    """`train --eval miracl:...` in the foreground: the console line and the stored rows."""
    from typer.testing import CliRunner

    from hybtui.cli.app import app
    from hybtui.runs.store import Store

    root, _ = miracl_data
    (root / "lareqa").symlink_to(shared_data / "lareqa")
    monkeypatch.setenv("COLUMNS", "200")
    proc = CliRunner().invoke(
        app,
        [
            "train",
            "--model",
            "tiny",
            "--train",
            "mlqa-r:en,de",
            "--eval",
            "miracl:sw",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--max-length",
            "32",
            "--warmup-steps",
            "1",
            "--data-dir",
            str(root),
            "--store",
            str(tmp_path / "store"),
            "--json",
        ],
    )
    assert proc.exit_code == 0, proc.output
    payload = json.loads(proc.stdout)
    assert payload["status"] == "finished"
    assert set(payload["summary"]["miracl"]["mono"]) == {"ndcg@10", "recall@100", "mrr@10"}
    with Store(tmp_path / "store") as store:
        rows = store.results(payload["id"])
    assert {(r["query_lang"], r["seen"]) for r in rows if r["metric"] == "ndcg@10"} >= {("sw", "unseen")}
