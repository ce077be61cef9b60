"""MIRACL-scale search and streamed corpus encoding: exact vs HNSW vs IVF, and me5-small throughput.

Search (synthetic): 1,000,000 random unit vectors of dimension 384 (me5-small's), stored as
hybtui stores corpus embeddings (a float16 .npy memmap), and 1,000 queries, each a noisy
copy of a random passage (its "planted" neighbour). Each index runs in its own process,
through hybtui.evaluation.retrieval: time to build and to search the top 100, peak memory, and the
approximate indexes' recall@100 / @10 of the exact top lists. Random vectors are the worst
case for approximate search: with no cluster structure, the exact top 100 beyond the
planted neighbour is a near-tie spread over the whole corpus; real embeddings are
clustered and reach far higher recall at the same settings.

Encoding (real text): the first 1,000 XQuAD-R paragraphs (en, de, es, ar, hi; MIRACL-like
passage length) written as a MIRACL corpus shard, encoded with me5-small by the streamed encoder
into the embedding cache: throughput, peak memory, and the time of the cached second run.

The machine's load average is recorded at the start and the end: other work on it slows
every figure alike. Memory: `maxrss` is the kernel's peak resident set (it counts the memmapped corpus pages
a search has touched, which the kernel can drop at will); `peak_anon` is the sampled peak
of anonymous memory (what the process itself allocated).

    HYBTUI_DATA_DIR=/path/to/data python benchmarks/miracl_search.py

HYBTUI_DATA_DIR (required, for the encoding part): the directory holding the benchmark
files (LAReQA's XQuAD-R), as for `hybtui --data-dir`. Writes
benchmarks/results/miracl_search.json with the figures and the machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np
from environment import data_dir, machine, write_result  # same folder

from hybtui.data import sources
from hybtui.data.corpus import scan_corpus
from hybtui.evaluation import retrieval
from hybtui.modeling import encoder as models

DIM, K = 384, 100


class PeakAnon:
    """Samples the process's anonymous resident memory (RssAnon) every 20 ms; `peak_mib`."""

    def __init__(self):
        self.peak_mib = self.now_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now_mib() -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssAnon:"))
        return int(line.split()[1]) / 1024

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak_mib = max(self.peak_mib, self.now_mib())

    def __enter__(self) -> PeakAnon:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_corpus(work: Path, n: int, queries: int) -> None:
    """Random unit passages (float16 memmap, written in chunks) and noisy-copy queries."""
    rng = np.random.default_rng(0)
    out = np.lib.format.open_memmap(work / "passages.npy", mode="w+", dtype=retrieval.STORAGE_DTYPE, shape=(n, DIM))
    for start in range(0, n, 100_000):
        x = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        out[start : start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    planted = rng.choice(n, queries, replace=False)
    q = out[planted].astype(np.float32) + (0.5 / DIM**0.5) * rng.standard_normal((queries, DIM), dtype=np.float32)
    np.save(work / "queries.npy", q / np.linalg.norm(q, axis=1, keepdims=True))
    np.save(work / "planted.npy", planted)
    out.flush()


def run_search(work: Path, kind: str) -> dict:
    passages = np.load(work / "passages.npy", mmap_mode="r")
    queries, planted = np.load(work / "queries.npy"), np.load(work / "planted.npy")
    with PeakAnon() as anon:
        start = time.perf_counter()
        if kind == "exact":
            _, rows = retrieval.exact_search(passages, queries, K)
            build_s, search_s = 0.0, time.perf_counter() - start
            np.save(work / "exact_rows.npy", rows)
        else:
            index = retrieval.build_index(kind, passages, K)
            build_s = time.perf_counter() - start
            start = time.perf_counter()
            _, rows = index.search(queries, K)
            search_s = time.perf_counter() - start
            settings = (
                {"M": retrieval.HNSW_M, "efConstruction": index.hnsw.efConstruction, "efSearch": index.hnsw.efSearch}
                if kind == "hnsw"
                else {"lists": index.nlist, "nprobe": index.nprobe}
            )
    result = {
        "build_s": round(build_s, 2),
        "search_s": round(search_s, 2),
        "queries_per_s": round(len(queries) / search_s, 1),
        "planted_at_1": float(np.mean(rows[:, 0] == planted)),
        "maxrss_mib": round(maxrss_mib()),
        "peak_anon_mib": round(anon.peak_mib),
    }
    if kind != "exact":
        result["settings"] = settings
        exact = np.load(work / "exact_rows.npy")
        result["recall@100_vs_exact"] = round(retrieval.recall_of(rows, exact), 4)
        result["recall@10_vs_exact"] = round(retrieval.recall_of(rows[:, :10], exact[:, :10]), 4)
    return result


def run_encode(work: Path, n: int, model: str, batch_size: int) -> dict:
    """n XQuAD-R paragraphs as a MIRACL shard, encoded twice (the second from the cache)."""
    root = data_dir()
    rows = []
    for lang in ("en", "de", "es", "ar", "hi", "ru", "th", "zh", "el", "tr", "vi"):
        path = next(
            r / "xquad-r" / f"{lang}.json"
            for r in sources.dataset_roots("lareqa", root)
            if (r / "xquad-r" / f"{lang}.json").is_file()
        )
        for article in json.loads(path.read_text())["data"]:
            rows += [
                {"docid": f"{lang}-{len(rows)}", "title": article.get("title", ""), "text": p["context"]}
                for p in article["paragraphs"]
            ]
    shard = work / "miracl-corpus-v1.0-xx/docs-0.jsonl.gz"
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows[:n]).encode()))
    corpus, _ = scan_corpus((shard,), "docid", set())
    encoder = models.load_encoder(models.encoder_spec(model), device="cpu")
    tokens = sum(
        len(ids)
        for chunk in corpus.texts(1000)
        for ids in encoder.tokenizer(
            [encoder.prefix("passage") + t for t in chunk], truncation=True, max_length=encoder.spec.max_length
        )["input_ids"]
    )
    baseline = PeakAnon.now_mib()
    with PeakAnon() as anon:
        start = time.perf_counter()
        _, cached = retrieval.corpus_embeddings(encoder, corpus, batch_size, cache_dir=work / "cache")
        encode_s = time.perf_counter() - start
    assert not cached
    start = time.perf_counter()
    _, cached = retrieval.corpus_embeddings(encoder, corpus, batch_size, cache_dir=work / "cache")
    assert cached
    return {
        "model": model,
        "passages": corpus.size,
        "mean_tokens": round(tokens / corpus.size, 1),
        "batch_size": batch_size,
        "encode_s": round(encode_s, 1),
        "passages_per_s": round(corpus.size / encode_s, 1),
        "cached_second_run_s": round(time.perf_counter() - start, 2),
        "anon_with_model_loaded_mib": round(baseline),
        "peak_anon_while_encoding_mib": round(anon.peak_mib),
        "maxrss_mib": round(maxrss_mib()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--encode-passages", type=int, default=1_000)
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--part", help=argparse.SUPPRESS)  # a child process: one measurement
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "miracl_search.json")
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    if args.part:
        result = (
            run_encode(args.work, args.encode_passages, args.model, args.batch_size)
            if args.part == "encode"
            else run_search(args.work, args.part)
        )
        print(json.dumps(result))
        return
    data_dir()  # the encoding part needs it: stop before minutes of search, not after
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hybtui-bench-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        make_corpus(work, args.passages, args.queries)
        print(f"{args.passages} passages × {DIM} written in {time.perf_counter() - start:.0f} s", flush=True)
        results = {}
        for part in ("exact", "ivf", "hnsw", "encode"):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--part",
                    part,
                    "--work",
                    str(work),
                    "--encode-passages",
                    str(args.encode_passages),
                    "--model",
                    args.model,
                    "--batch-size",
                    str(args.batch_size),
                ],
                capture_output=True,
                text=True,
            )
            if child.returncode:
                raise SystemExit(f"{part} failed:\n{child.stderr}")
            results[part] = json.loads(child.stdout.splitlines()[-1])
            print(part, results[part], flush=True)
    out = {
        "command": "python benchmarks/miracl_search.py"
        + "".join(
            f" --{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k in ("passages", "queries", "encode_passages", "model", "batch_size") and v != parser.get_default(k)
        ),
        "search": {
            "passages": args.passages,
            "queries": args.queries,
            "dim": DIM,
            "k": K,
            "storage": "float16 memmap",
            "faiss_threads": 2,
            **{kind: results[kind] for kind in ("exact", "hnsw", "ivf")},
        },
        "encode": results["encode"],
        "machine": {
            **machine(),
            "faiss": faiss.__version__,
            "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    write_result(args.out, out)


if __name__ == "__main__":
    main()
