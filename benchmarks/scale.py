"""Training data at the paper's scale: 5 million parallel pairs over 9 languages.

Generates a synthetic Parquet file (600,000 items; two in three in all 9 languages, the
rest in 7: 5,000,000 rows of short random texts) under the cache unless an earlier run
did, then measures, each in a fresh process: peak RSS and start-up (until the first batch
is printed) of `hybtui sample` for mono, cross and hybrid batches — the first one with an
empty cache, so it includes converting the file to Arrow and indexing it — and peak RSS
and wall time of a 3-step `tiny` training (no evaluation; `VALIDATION` of the items held
out). In this process: the sampler's time per batch (drawing it, and with its texts taken
from the table) against a `tiny` training step.

    python benchmarks/scale.py [--pairs-file PATH]

Writes benchmarks/results/scale.json and benchmarks/results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from environment import machine, write_result  # same folder

from hybtui.data import sources

LANGUAGES = ("ar", "de", "en", "es", "hi", "ru", "th", "vi", "zh")
ITEMS = 600_000
BATCH = 32
#: The share of items held out for validation: the trainer encodes every held-out pair at each
#: validation, so the default 5 % (249,201 pairs here) would dominate a 3-step run.
VALIDATION = 0.0001
RESULTS = Path(__file__).parent / "results"


def generate(path: Path) -> int:
    """Write the synthetic pairs, language after language (as per-language files are
    concatenated); items with i % 3 == 0 lack the last two languages."""
    rng = np.random.default_rng(0)
    vocabulary = pa.array([f"w{i:04d}" for i in range(5000)])
    ids = pa.array([f"item{i}" for i in range(ITEMS)])
    rows = 0
    with pq.ParquetWriter(path, pa.schema([(c, pa.string()) for c in ("item", "lang", "query", "passage")])) as out:
        for k, lang in enumerate(LANGUAGES):
            keep = np.arange(ITEMS) if k < 7 else np.flatnonzero(np.arange(ITEMS) % 3)
            n = len(keep)

            def words(count: int, n: int = n) -> pa.Array:
                picks = [vocabulary.take(rng.integers(0, len(vocabulary), n)) for _ in range(count)]
                return pc.binary_join_element_wise(*picks, " ")

            table = pa.table(
                {"item": ids.take(keep), "lang": pa.array([lang] * n), "query": words(6), "passage": words(16)}
            )
            out.write_table(table, row_group_size=100_000)
            rows += n
    return rows


def existing_rows(path: Path) -> int | None:
    """The row count of a pairs file an earlier run generated (it is deterministic), else None."""
    if not path.is_file():
        return None
    rows = pq.read_metadata(path).num_rows
    return rows if rows == ITEMS * 7 + ITEMS * 2 * 2 // 3 else None


def measure(command: list[str], env: dict, first_line: bool) -> dict:
    """Wall time, time to the first line of output and peak RSS of one fresh process
    (its own rusage, from wait4)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline() if first_line else ""
        to_first = time.perf_counter() - start
        proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            raise SystemExit(f"{' '.join(command)} failed: {err.read()[-2000:].decode(errors='replace')}")
    result = {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    if first_line:
        result.update(first_batch_s=round(to_first, 2), first_line=line.strip()[:80])
    return result


def in_process(pairs: Path, cache: Path) -> dict:
    """The sampler's time per batch against a tiny training step, over the same table."""
    os.environ["XDG_CACHE_HOME"] = str(cache)
    import torch
    from train_throughput import TEMPERATURE, hybtui_step  # same folder

    from hybtui.config import RunConfig
    from hybtui.data.training import load_training_sets, split_validation
    from hybtui.modeling import encoder as models
    from hybtui.training.grad_cache import batch_texts
    from hybtui.training.loss import InfoNCELoss
    from hybtui.training.optimizer import build_optimizer
    from hybtui.training.sampling import BatchSampler

    torch.manual_seed(0)
    (ts,) = load_training_sets([str(pairs)], None)
    ts = split_validation(ts, VALIDATION)[0]
    sets = {ts.name: ts}
    sampler = BatchSampler([ts], "hybrid", BATCH, seed=1, alpha=0.5)
    sampler.batch(0)
    t0 = time.perf_counter()
    for step in range(1, 1001):
        sampler.batch(step)
    draw = (time.perf_counter() - t0) / 1000
    t0 = time.perf_counter()
    for step in range(1001, 1201):
        batch_texts(sampler.batch(step), sets)
    with_texts = (time.perf_counter() - t0) / 200
    encoder = models.load_encoder(models.encoder_spec("tiny"), device="cpu").train()
    optimizer, _ = build_optimizer(encoder, RunConfig(model="tiny", batch_size=BATCH))
    loss_fn = InfoNCELoss(TEMPERATURE)
    hybtui_step(encoder, optimizer, sampler, sets, 0, loss_fn)  # warm-up
    steps = [hybtui_step(encoder, optimizer, sampler, sets, s, loss_fn)[0] for s in range(1, 6)]
    step = float(np.median(steps))
    return {
        "sampler_batch_ms": round(draw * 1e3, 3),
        "sampler_batch_with_texts_ms": round(with_texts * 1e3, 3),
        "tiny_step_ms": round(step * 1e3, 1),
        "sampler_share_of_step": round(with_texts / step, 5),
    }


def processes(pairs: Path, work: Path) -> dict:
    """Start-up and peak RSS of `hybtui sample` (first with an empty cache), and of a 3-step training."""
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    hybtui = [sys.executable, "-m", "hybtui"]
    sample = [*hybtui, "sample", "--train", str(pairs), "--batch-size", str(BATCH), "--seed", "1"]
    runs = {}
    for name, sampler in (("sample_hybrid_cold", "hybrid"), *((f"sample_{s}", s) for s in ("mono", "cross", "hybrid"))):
        runs[name] = measure([*sample, "--sampler", sampler, "--steps", "100", "--json"], env, first_line=True)
        print(name, runs[name], flush=True)
    config = work / "tiny.toml"
    config.write_text(f"eval = []\nvalidation_fraction = {VALIDATION}\n")
    train = [*hybtui, "train", "--config", str(config), "--model", "tiny", "--train", str(pairs)]
    train += ["--steps", "3", "--batch-size", str(BATCH), "--device", "cpu", "--store", str(work / "store")]
    runs["train_tiny_3_steps"] = measure(train, env, first_line=False)
    print("train_tiny_3_steps", runs["train_tiny_3_steps"], flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs-file", type=Path, default=sources.cache_root().parent / "scale" / "pairs.parquet")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    load_before = [round(x, 1) for x in os.getloadavg()]
    args.pairs_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = existing_rows(args.pairs_file) or generate(args.pairs_file)
    generated = time.perf_counter() - t0
    print(f"{rows} pairs in {args.pairs_file} ({generated:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="hybtui-scale-") as tmp:  # its Arrow cache: about 800 MB
        runs = processes(args.pairs_file, Path(tmp))
        inner = in_process(args.pairs_file, Path(tmp) / "cache")
    result = {
        "command": "python benchmarks/scale.py",
        "pairs": rows,
        "items": ITEMS,
        "languages": list(LANGUAGES),
        "file": "Parquet, " + f"{args.pairs_file.stat().st_size / 2**20:.0f} MiB",
        "generate_or_reuse_s": round(generated, 1),
        "processes": runs,
        "in_process": inner,
        "machine": machine(),
        "load_average_1_5_15": {"start": load_before, "end": [round(x, 1) for x in os.getloadavg()]},
        "validation_fraction": VALIDATION,
        "date": time.strftime("%Y-%m-%d"),
    }
    write_result(args.out, result)
    (RESULTS / "scale.md").write_text(report(result))
    print(json.dumps(result, indent=1))


def report(result: dict) -> str:
    """The figures as a Markdown table, with the command and the hardware."""
    load = result["load_average_1_5_15"]
    lines = [
        f"# {result['pairs']:,} parallel pairs over {len(result['languages'])} languages",
        "",
        f"`{result['command']}` on a {result['machine']['cores']}-core {result['machine']['cpu']}, no GPU, "
        f"{result['date']}, shared with other jobs: load average (1, 5, 15 min) "
        f"{load['start']} at the start, {load['end']} at the end. "
        f"Data: {result['file']}, {result['items']:,} items. The cold run starts with an empty cache "
        "(it converts the file to Arrow and indexes it); the training holds out "
        f"{result['validation_fraction']:.2%} of the items for validation and evaluates nothing.",
        "",
        "| process | start-up (first batch) | wall | peak RSS |",
        "|---|---|---|---|",
    ]
    for name, run in result["processes"].items():
        first = f"{run['first_batch_s']} s" if "first_batch_s" in run else "—"
        lines.append(f"| {name} | {first} | {run['wall_s']} s | {run.get('peak_rss_mb', '?')} MB |")
    inner = result["in_process"]
    lines += [
        "",
        f"Sampler: {inner['sampler_batch_ms']} ms per batch of {BATCH} drawn, "
        f"{inner['sampler_batch_with_texts_ms']} ms with its texts taken from the table; "
        f"a tiny training step: {inner['tiny_step_ms']} ms "
        f"(sampler share {inner['sampler_share_of_step']:.2%}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
