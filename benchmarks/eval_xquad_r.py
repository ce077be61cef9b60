"""Encode-once evaluation on full XQuAD-R, side by side with sentence-transformers.

Measures, in one run on the same model, texts and batch size (the two tools
interleaved language by language so background load falls on both alike):
  * hybtui's time to encode every query and candidate (11 languages),
  * hybtui's time to score everything else (11 mono + 110 cross pairs + the
    multilingual pool, all metrics, rank distance),
  * `SentenceTransformer.encode` on the same texts (with the same prefixes),
and reports the encode throughput ratio hybtui / sentence-transformers (≥ 1.0 is the bar).

    HYBTUI_DATA_DIR=/path/to/data python benchmarks/eval_xquad_r.py

HYBTUI_DATA_DIR (required): the directory holding the benchmark files (LAReQA's XQuAD-R),
as for `hybtui --data-dir`. Writes benchmarks/results/eval_xquad_r.json with the figures
and the machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from environment import data_dir, machine, write_result  # same folder

from hybtui.data import lareqa
from hybtui.evaluation import evaluate
from hybtui.modeling import encoder as models
from hybtui.results import summary as results_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-queries", type=int, default=None, help="subset per language (quick check)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_xquad_r.json")
    args = parser.parse_args()

    bench = lareqa.load("xquad-r", data_dir=data_dir())
    if args.max_queries:
        bench = bench.max_queries(args.max_queries)
    encoder = models.load_encoder(models.encoder_spec(args.model), device="cpu")
    queries = [q for s in bench.splits.values() for q in s.queries]
    candidates = [c for s in bench.splits.values() for c in s.candidates]
    n_texts = len(queries) + len(candidates)
    print(f"{args.model}: {len(queries)} queries + {len(candidates)} candidates, batch {args.batch_size}")

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(models.checkpoint_dir(args.model)), device="cpu")
    encoder.encode(queries[:64], "query", args.batch_size)  # warm-up both paths alike
    st.encode(queries[:64], prompt_name="query", batch_size=args.batch_size)
    # Interleave the two tools language by language (alternating who goes first), so
    # load from anything else on the machine falls on both alike.
    ours_encode = st_encode = 0.0
    embeddings, agreement = {}, []
    for i, (lang, split) in enumerate(bench.splits.items()):
        for tool in ("ours", "st") if i % 2 == 0 else ("st", "ours"):
            t0 = time.perf_counter()
            if tool == "ours":
                embeddings[lang] = evaluate.EncodedSplit(
                    encoder.encode(split.queries, "query", args.batch_size),
                    encoder.encode(split.candidates, "passage", args.batch_size),
                )
                ours_encode += time.perf_counter() - t0
            else:
                st_q = st.encode(list(split.queries), prompt_name="query", batch_size=args.batch_size)
                st.encode(list(split.candidates), prompt_name="passage", batch_size=args.batch_size)
                st_encode += time.perf_counter() - t0
        agreement.append(float(np.mean(np.sum(embeddings[lang].queries * st_q, axis=1))))
        print(f"{lang}: hybtui {ours_encode:.0f} s, sentence-transformers {st_encode:.0f} s so far", flush=True)
    t0 = time.perf_counter()
    rows = evaluate.score_benchmark(bench, embeddings)
    ours_score = time.perf_counter() - t0
    print(f"hybtui encode {ours_encode:.1f} s ({n_texts / ours_encode:.1f} texts/s), score {ours_score:.2f} s")
    print(f"sentence-transformers encode {st_encode:.1f} s ({n_texts / st_encode:.1f} texts/s)")
    print(
        f"throughput ratio hybtui / sentence-transformers: {st_encode / ours_encode:.2f}; "
        f"mean cosine between the two embeddings of each query {np.mean(agreement):.6f}"
    )
    summary = results_summary(rows)["xquad-r"]
    result = {
        "command": "python benchmarks/eval_xquad_r.py"
        + (f" --max-queries {args.max_queries}" if args.max_queries else ""),
        "model": args.model,
        "batch_size": args.batch_size,
        "queries": len(queries),
        "candidates": len(candidates),
        "hybtui_encode_s": round(ours_encode, 2),
        "hybtui_score_s": round(ours_score, 3),
        "st_encode_s": round(st_encode, 2),
        "throughput_ratio": round(st_encode / ours_encode, 3),
        "embedding_agreement": round(float(np.mean(agreement)), 6),
        "summary": summary,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
