"""The prepared GPU check: does hybtui train on a GPU, and how fast is an XLM-R-base-sized encoder there?

    python benchmarks/gpu_check.py [--dry-run] [--out DIR] [--peak-tflops BF16 FP32]

Three measurements, printed as they go, within minutes on one GPU:

1. queue: a tiny run as a user queues it (`hybtui train --model tiny --device cuda --precision bf16
   --detach`) into a fresh store, on synthetic pairs (JSONL) and a synthetic BEIR folder (no
   download, no benchmark data); waits for `finished`, checks its metrics and results in the
   store and reports the wall time from submit to finished.
2. train: a randomly initialised encoder of xlm-roberta-base's shape (transformers'
   `XLMRobertaConfig()` defaults with base's vocabulary of 250,002 and 514 positions) trained
   at batch 100 (100 queries + 100 passages, 128 tokens each) with hybtui's InfoNCE over
   in-batch negatives and AdamW: pairs/s and model FLOPs utilisation (MFU) in fp32 and under
   bf16 autocast, warm-up steps excluded.
3. encode: texts/s of the same encoder under inference at batch 256, fp32 and bf16.

Token ids are drawn at random and every sequence is a full 128 tokens (tokenisation is not
timed), so the FLOPs count is exact for what ran. fp32 runs with torch's default matmul
precision (TF32 off), so its MFU is against the fp32 non-tensor-core peak.

--dry-run runs the same code on the CPU with a 2-layer, hidden-128 encoder (vocabulary 1,000: the
optimizer's update of 250,002 embeddings would dominate a CPU step) and small batches
(MFU null), as CI does. Writes gpu_check-<device>.json and .md into --out (default
benchmarks/results/; for a dry run, a new temporary folder). HF_HUB_OFFLINE=1 is set: it never
needs the internet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from environment import machine, write_result  # same folder

from hybtui.runs import gpus as gpu_pool
from hybtui.runs.store import Store
from hybtui.training.loss import InfoNCELoss

RESULTS = Path(__file__).parent / "results"
#: Dense peak TFLOPS (bf16 tensor core, fp32 without tensor cores) by a fragment of the
#: device's name, first match wins, from NVIDIA's data sheets (SXM unless the name says PCIe/NVL).
PEAKS = (
    ("H200", 989.0, 67.0),
    ("H100 PCIe", 756.0, 51.0),
    ("H100 NVL", 835.0, 60.0),
    ("H100", 989.0, 67.0),
    ("A100", 312.0, 19.5),
)
FLOPS_FORMULA = (
    "per step: 6 × N × T + 12 × layers × hidden × L² × S, with N the non-embedding parameters, "
    "S = 2 × batch sequences (queries + passages) of L tokens, T = S × L tokens; "
    "MFU = (FLOPs per step × steps / seconds) / peak"
)
#: xlm-roberta-base's config.json where it differs from XLMRobertaConfig()'s defaults (layers,
#: hidden 768, 12 heads and intermediate 3072 are the defaults).
XLM_ROBERTA_BASE = {
    "vocab_size": 250002,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
}
TEMPERATURE = 0.05
LANGUAGES = ("en", "de", "es")
TIMEOUT_S = 300


@dataclass(frozen=True)
class Plan:
    """How much to run: the real check on a GPU, or the small dry run on the CPU."""

    device: str
    layers: int | None  # None: xlm-roberta-base's 12 layers and hidden 768
    hidden: int | None
    vocab: int | None  # None: xlm-roberta-base's 250,002
    batch: int
    max_length: int
    encode_batch: int
    warmup: int
    steps: int
    queue_steps: int


GPU_PLAN = Plan("cuda", None, None, None, 100, 128, 256, warmup=3, steps=20, queue_steps=30)
DRY_PLAN = Plan("cpu", 2, 128, 1000, 8, 32, 16, warmup=1, steps=2, queue_steps=3)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def peak_tflops(device_name: str) -> tuple[float, float] | None:
    """(bf16, fp32) dense peak of a device from PEAKS, or None when it is not listed."""
    return next(((bf16, fp32) for part, bf16, fp32 in PEAKS if part in device_name), None)


# ---------------------------------------------------------------- 1. a tiny run through the queue


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_synthetic_data(root: Path) -> tuple[Path, Path]:
    """Parallel training pairs (JSONL) and a BEIR folder, enough for the tiny run's sampler and evaluation."""
    pairs, beir = root / "pairs.jsonl", root / "beir"
    (beir / "qrels").mkdir(parents=True)
    texts = (
        {"item": f"i{i}", "lang": lang, "query": f"{lang} question {i}", "passage": f"{lang} answer {i}"}
        for i in range(32)
        for lang in LANGUAGES
    )
    write_jsonl(pairs, texts)
    write_jsonl(beir / "corpus.jsonl", ({"_id": f"d{i}", "title": "", "text": f"answer {i}"} for i in range(40)))
    write_jsonl(beir / "queries.jsonl", ({"_id": f"q{i}", "text": f"question {i}"} for i in range(40)))
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(40))
    (beir / "qrels" / "test.tsv").write_text(qrels)
    return pairs, beir


def queue_run(plan: Plan, workdir: Path) -> dict:
    """Submit the tiny run (bf16 on a GPU) detached, wait for its end, and check what it left in the store."""
    pairs, beir = write_synthetic_data(workdir / "data")
    store = workdir / "store"
    # bf16 on the GPU; a dry run on a CPU takes what `auto` finds (a CPU without native bf16 refuses bf16)
    precision = "bf16" if plan.device == "cuda" else "auto"
    args = ["train", "--model", "tiny", "--device", plan.device, "--precision", precision, "--detach"]
    args += ["--name", "gpu-check"]
    args += ["--train", str(pairs), "--eval", f"beir:{beir}:en", "--steps", str(plan.queue_steps)]
    args += ["--batch-size", "8", "--max-length", "32", "--store", str(store), "--json"]
    say(f"queue: hybtui {' '.join(args)}")
    env, pool = queue_environment(plan)
    start = time.perf_counter()
    submitted = subprocess.run(
        [sys.executable, "-m", "hybtui", *args], capture_output=True, text=True, check=False, env=env
    )
    if submitted.returncode != 0:
        raise SystemExit(f"queue: hybtui train failed ({submitted.returncode}): {submitted.stderr.strip()}")
    run_id = json.loads(submitted.stdout)["id"]
    run = wait_for_end(store, run_id)
    wall = time.perf_counter() - start
    with Store(store) as db:
        metrics, results, telemetry = db.metrics_since(run_id), db.results(run_id), db.telemetry(run_id)
    if run.status != "finished" or not metrics or not results:
        log = store / "runs" / run_id / "worker.log"
        tail = log.read_text()[-2000:] if log.is_file() else "(no worker log)"
        raise SystemExit(
            f"queue: run {run_id} ended {run.status} with {len(metrics)} metrics, "
            f"{len(results)} results: {run.error}\n{tail}"
        )
    say(f"queue: run {run_id} finished in {wall:.1f} s ({len(metrics)} metrics, {len(results)} results)")
    counts = {"metrics": len(metrics), "results": len(results), "telemetry_samples": len(telemetry)}
    figures = {"status": str(run.status), "wall_s": round(wall, 2), "steps": plan.queue_steps, **counts}
    return {"command": "hybtui " + " ".join(args), **figures, "gpus": run.gpus, "gpu_pool": pool}


def queue_environment(plan: Plan) -> tuple[dict[str, str], str]:
    """The queue's environment and where its GPU pool came from. Without NVML (no nvidia-ml-py)
    the pool is empty and a `cuda` run is refused, so the GPUs torch sees are declared instead."""
    env = dict(os.environ)
    if plan.device != "cuda" or gpu_pool.pool():
        return env, ",".join(gpu_pool.pool()) or "none"
    env[gpu_pool.ENV_POOL] = ",".join(str(i) for i in range(torch.cuda.device_count()))
    return env, f"{env[gpu_pool.ENV_POOL]} ({gpu_pool.ENV_POOL}, declared from torch: NVML unavailable)"


def wait_for_end(store: Path, run_id: str):
    """The run's record once it has ended (polling the store, as the app does)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with Store(store) as db:
            run = db.get_run(run_id)
        if run.status.ended:
            return run
        time.sleep(0.5)
    raise SystemExit(f"queue: run {run_id} did not end within {TIMEOUT_S} s (last status {run.status})")


# ---------------------------------------------------------------- 2 and 3. the xlm-roberta-base-shaped encoder


def build_encoder(plan: Plan, device: torch.device):
    """A randomly initialised XLM-R encoder (no download): base's shape, or the dry run's small one."""
    from transformers import AutoModel, XLMRobertaConfig

    small = {} if plan.layers is None else {"num_hidden_layers": plan.layers, "hidden_size": plan.hidden}
    if small:
        small.update(num_attention_heads=2, intermediate_size=4 * plan.hidden, vocab_size=plan.vocab)
    config = XLMRobertaConfig(**{**XLM_ROBERTA_BASE, **small})
    torch.manual_seed(0)
    model = AutoModel.from_config(config, add_pooling_layer=False).to(device)
    return model, config


def shape_of(model, config) -> dict:
    non_embedding = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("embeddings."))
    return {
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "heads": config.num_attention_heads,
        "intermediate": config.intermediate_size,
        "vocab": config.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "non_embedding_parameters": non_embedding,
        "attention": config._attn_implementation,
    }


def token_batch(count: int, length: int, vocab: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random full-length token ids between <s> and </s>, every position attended."""
    ids = torch.randint(5, vocab, (count, length), device=device)
    ids[:, 0], ids[:, -1] = 0, 2
    return ids, torch.ones_like(ids)


def embed(model, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean pooling and L2 norm, as hybtui's encoder does."""
    ids, mask = batch
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def timed(device: torch.device, step, warmup: int, steps: int) -> tuple[float, float | None]:
    """Seconds for `steps` calls of `step` after `warmup` untimed ones (the device synchronised
    around them), and the GPU memory they peaked at (GiB)."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else lambda: None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    return seconds, round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None


def train_figures(plan: Plan, model, shape: dict, device: torch.device, peaks: tuple[float, float] | None) -> dict:
    """Pairs/s, TFLOPS and MFU of InfoNCE training steps with AdamW, fp32 and bf16 autocast."""
    model.train()
    loss_fn = InfoNCELoss(TEMPERATURE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    queries = token_batch(plan.batch, plan.max_length, shape["vocab"], device)
    passages = token_batch(plan.batch, plan.max_length, shape["vocab"], device)
    sequences = 2 * plan.batch
    flops = 6 * shape["non_embedding_parameters"] * sequences * plan.max_length
    flops += 12 * shape["layers"] * shape["hidden"] * plan.max_length**2 * sequences
    figures = {}
    for index, precision in enumerate(("fp32", "bf16")):

        def step(bf16: bool = precision == "bf16") -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(embed(model, queries), embed(model, passages))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds, memory = timed(device, step, plan.warmup, plan.steps)
        tflops = flops * plan.steps / seconds / 1e12
        mfu = None if peaks is None else round(tflops / peaks[index], 4)
        figures[precision] = {
            "pairs_per_s": round(plan.batch * plan.steps / seconds, 1),
            "seconds_per_step": round(seconds / plan.steps, 4),
            "achieved_tflops": float(f"{tflops:.3g}"),
            "mfu": mfu,
            "peak_memory_gib": memory,
        }
        say(f"train {precision}: {figures[precision]}")
    return {"flops_per_step": flops, **figures}


def encode_figures(plan: Plan, model, shape: dict, device: torch.device) -> dict:
    """Texts/s of the encoder under inference at the evaluation batch, fp32 and bf16 autocast."""
    model.eval()
    batch = token_batch(plan.encode_batch, plan.max_length, shape["vocab"], device)
    figures = {}
    for precision in ("fp32", "bf16"):

        def step(bf16: bool = precision == "bf16") -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                embed(model, batch)

        seconds, memory = timed(device, step, plan.warmup, plan.steps)
        figures[precision] = {
            "texts_per_s": round(plan.encode_batch * plan.steps / seconds, 1),
            "peak_memory_gib": memory,
        }
        say(f"encode {precision}: {figures[precision]}")
    return figures


def encoder_check(plan: Plan, peaks: tuple[float, float] | None, command: str) -> dict:
    device = torch.device(plan.device)
    model, config = build_encoder(plan, device)
    shape = shape_of(model, config)
    say(f"encoder: {shape}")
    settings = {"batch": plan.batch, "max_length": plan.max_length, "warmup_steps": plan.warmup, "steps": plan.steps}
    train = {"command": command, **settings, **train_figures(plan, model, shape, device, peaks)}
    encode = {"command": command, "batch": plan.encode_batch, "max_length": plan.max_length, "steps": plan.steps}
    encode.update(encode_figures(plan, model, shape, device))
    return {"shape": shape, "train": train, "encode": encode}


# ---------------------------------------------------------------- output


def markdown(result: dict) -> str:
    """A short table of the figures, the device and the formula beside them."""
    train, encode, queue = result["encoder"]["train"], result["encoder"]["encode"], result["queue"]
    shape = result["encoder"]["shape"]

    def mfu(precision: str) -> str:
        value = train[precision]["mfu"]
        return "n/a" if value is None else f"{100 * value:.1f} %"

    lines = [
        f"# GPU check: {result['device']}",
        "",
        f"torch {result['torch']}, CUDA {result['cuda']}, {result['date']}; `{result['command']}`",
        "",
        f"Encoder: {shape['layers']} layers, hidden {shape['hidden']}, {shape['non_embedding_parameters']:,} "
        f"non-embedding parameters; batch {train['batch']} pairs, {train['max_length']} tokens.",
        "",
        "| figure | fp32 | bf16 |",
        "|---|---|---|",
        f"| training pairs/s | {train['fp32']['pairs_per_s']} | {train['bf16']['pairs_per_s']} |",
        f"| training TFLOPS | {train['fp32']['achieved_tflops']} | {train['bf16']['achieved_tflops']} |",
        f"| MFU | {mfu('fp32')} | {mfu('bf16')} |",
        f"| encoding texts/s (batch {encode['batch']}) | {encode['fp32']['texts_per_s']} | "
        f"{encode['bf16']['texts_per_s']} |",
        "",
        f"Queue: tiny bf16 run `{queue['status']}` in {queue['wall_s']} s from submit "
        f"({queue['metrics']} metrics, {queue['results']} results, GPUs {queue['gpus'] or '-'}).",
        "",
        f"FLOPs: {FLOPS_FORMULA}. Peak: {result['peak_tflops']['source']}.",
    ]
    return "\n".join(lines) + "\n"


def peaks_for(name: str, override: list[float] | None) -> tuple[tuple[float, float] | None, str]:
    """The (bf16, fp32) peak used for MFU and where it came from."""
    if override:
        return (override[0], override[1]), f"--peak-tflops: {override[0]} bf16, {override[1]} fp32"
    found = None if name == "cpu" else peak_tflops(name)
    if found is None:
        return None, f"none known for {name}: MFU not computed (give --peak-tflops BF16 FP32)"
    return found, f"{found[0]} TFLOPS bf16 dense (tensor cores), {found[1]} TFLOPS fp32 (no tensor cores, TF32 off)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU, small (CI)")
    parser.add_argument("--out", type=Path, help="where the .json and .md go")
    parser.add_argument("--peak-tflops", type=float, nargs=2, metavar=("BF16", "FP32"), help="the device's peaks")
    args = parser.parse_args()
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    if plan.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to torch: run with --dry-run on a CPU machine")
    out = args.out or (Path(tempfile.mkdtemp(prefix="gpu_check-")) if args.dry_run else RESULTS)
    name = torch.cuda.get_device_name(0) if plan.device == "cuda" else "cpu"
    peaks, source = peaks_for(name, None if args.dry_run else args.peak_tflops)
    command = "python benchmarks/gpu_check.py" + (" --dry-run" if args.dry_run else "")
    say(f"device {name}, torch {torch.__version__}, CUDA {torch.version.cuda}; peak: {source}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as workdir:
        queue = queue_run(plan, Path(workdir))
    result = {"command": command, "device": name, "torch": torch.__version__, "cuda": torch.version.cuda}
    result.update(date=time.strftime("%Y-%m-%d"), machine=machine(), flops_formula=FLOPS_FORMULA)
    result["peak_tflops"] = {"bf16": peaks and peaks[0], "fp32": peaks and peaks[1], "source": source}
    result.update(queue=queue, encoder=encoder_check(plan, peaks, command))
    result["total_s"] = round(time.perf_counter() - started, 1)
    stem = "gpu_check-" + name.lower().replace(" ", "-")
    write_result(out / f"{stem}.json", result)
    (out / f"{stem}.md").write_text(markdown(result))
    say(f"wrote {out / stem}.md; total {result['total_s']} s")


if __name__ == "__main__":
    main()
