"""Training throughput: hybtui's trainer step vs sentence-transformers' MultipleNegativesRankingLoss.

Both train the same model on the same (query, passage) pairs — hybtui's hybrid sampler
over MLQA-R — with the same batch size, maximum length, temperature (MNRL scale
1/τ = 20) and AdamW. Steps alternate between the two (ABAB…) so background load falls
on both alike. sentence-transformers runs its loss in a plain loop (no HF Trainer), the
fastest way it can train. Also measured: the sampler's share of hybtui's step time,
and me5-small's seconds per step at the paper's batch 100 in fp32 and bf16.

    HYBTUI_DATA_DIR=/path/to/data python benchmarks/train_throughput.py

HYBTUI_DATA_DIR (required): the directory holding the benchmark files (MLQA-R), as for
`hybtui --data-dir`. Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from environment import data_dir, machine, write_result  # same folder

from hybtui.config import RunConfig
from hybtui.data.training import load_training_sets
from hybtui.modeling import encoder as models
from hybtui.training.grad_cache import batch_texts, loss_and_backward
from hybtui.training.loss import InfoNCELoss
from hybtui.training.optimizer import build_optimizer
from hybtui.training.sampling import BatchSampler

#: InfoNCE temperature τ; sentence-transformers' MNRL takes its inverse as ``scale``.
TEMPERATURE = 0.05


def hybtui_step(encoder, optimizer, sampler, sets, step, loss_fn, bf16=False) -> tuple[float, float]:
    """One optimizer step; returns (seconds, seconds spent drawing the batch)."""
    t0 = time.perf_counter()
    texts = batch_texts(sampler.batch(step), sets)
    drawn = time.perf_counter() - t0
    loss_and_backward(encoder, texts, loss_fn, autocast=bf16)
    torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, drawn


def sentence_transformers_step(args, config: RunConfig, prompts: tuple[str, str], sampler, sets):
    """sentence-transformers' step on the same batches: MNRL in a plain loop with the fused
    AdamW its trainer (HF Trainer, torch ≥ 2.8) uses by default. Its model, loss and
    optimizer live only as long as the returned step function, so they are freed before
    the batch-100 measurements."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    st = SentenceTransformer(str(models.checkpoint_dir(args.model)), device="cpu")
    st.max_seq_length = args.max_length
    st.train()
    mnrl = MultipleNegativesRankingLoss(st, scale=1 / TEMPERATURE)
    optimizer = torch.optim.AdamW(st.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)

    def step(index: int) -> float:
        t0 = time.perf_counter()
        texts = batch_texts(sampler.batch(index), sets)
        q = st.tokenize([prompts[0] + t for t in texts.queries])
        p = st.tokenize([prompts[1] + t for t in texts.passages])
        loss = mnrl([q, p], labels=None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


def alternate(args, ours, optimizer, sampler, sets, loss_fn, st_step) -> dict:
    """Both tools' steps, ABAB… after one warm-up each: pairs per second and the sampler's share."""
    hybtui_step(ours, optimizer, sampler, sets, 0, loss_fn)  # warm-up
    st_step(0)
    ours_s, st_s, drawn_s = 0.0, 0.0, 0.0
    for step in range(1, args.steps + 1):
        for tool in ("ours", "st") if step % 2 else ("st", "ours"):
            if tool == "ours":
                seconds, drawn = hybtui_step(ours, optimizer, sampler, sets, step, loss_fn)
                ours_s += seconds
                drawn_s += drawn
            else:
                st_s += st_step(step)
        print(
            f"step {step}: hybtui {ours_s / step:.2f} s/step, sentence-transformers {st_s / step:.2f} s/step",
            flush=True,
        )
    pairs = args.steps * args.batch_size
    return {
        "hybtui_pairs_per_s": round(pairs / ours_s, 2),
        "st_pairs_per_s": round(pairs / st_s, 2),
        "throughput_ratio": round(st_s / ours_s, 3),
        "sampler_share_of_step": round(drawn_s / ours_s, 5),
    }


def paper_batch(args, ours, optimizer, training_sets, sets, loss_fn) -> dict:
    """The paper's batch 100, fp32 and bf16 autocast, hybtui's trainer step: seconds per step."""
    result = {}
    paper = BatchSampler(training_sets, "hybrid", 100, seed=0, alpha=0.5)
    for label, bf16 in (("fp32", False), ("bf16", True)):
        hybtui_step(ours, optimizer, paper, sets, 0, loss_fn, bf16)
        took = [hybtui_step(ours, optimizer, paper, sets, s, loss_fn, bf16)[0] for s in range(1, args.paper_steps + 1)]
        result[f"seconds_per_step_batch100_{label}"] = round(sum(took) / len(took), 2)
        print(f"batch 100 {label}: {result[f'seconds_per_step_batch100_{label}']} s/step", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="measured steps per tool (after 1 warm-up)")
    parser.add_argument("--paper-steps", type=int, default=2, help="measured steps at batch 100 (fp32 and bf16)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_throughput.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    training_sets = load_training_sets(["mlqa-r"], data_dir())
    sets = {s.name: s for s in training_sets}
    config = RunConfig(model=args.model, batch_size=args.batch_size, max_length=args.max_length)
    sampler = BatchSampler(training_sets, "hybrid", args.batch_size, seed=0, alpha=0.5)
    ours = models.load_encoder(models.encoder_spec(args.model, max_length=args.max_length), device="cpu").train()
    optimizer, _ = build_optimizer(ours, config)
    loss_fn = InfoNCELoss(TEMPERATURE)
    st_step = sentence_transformers_step(args, config, (ours.prefix("query"), ours.prefix("passage")), sampler, sets)
    result = {
        "command": "python benchmarks/train_throughput.py",
        "model": args.model,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "steps": args.steps,
        **alternate(args, ours, optimizer, sampler, sets, loss_fn, st_step),
    }
    del st_step  # frees sentence-transformers' model and optimizer before the larger batches
    result.update(paper_batch(args, ours, optimizer, training_sets, sets, loss_fn))
    result.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
    write_result(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
