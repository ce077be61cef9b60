"""Training throughput: hybtui's trainer step vs sentence-transformers' MultipleNegativesRankingLoss.

Both train the same model on the same (query, passage) pairs — hybtui's hybrid sampler
over MLQA-R — with the same batch size, maximum length, temperature (MNRL scale
1/τ = 20) and AdamW. Steps alternate between the two (ABAB…) so background load falls
on both alike. sentence-transformers runs its loss in a plain loop (no HF Trainer), the
fastest way it can train. Also measured: the sampler's share of hybtui's step time,
and me5-small's seconds per step at the paper's batch 100 in fp32 and bf16.

    HF_HUB_OFFLINE=1 HYBTUI_DATA_DIR=../shared/data python benchmarks/train_throughput.py

Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hybtui.modeling import encoder as models
from hybtui.config import RunConfig
from hybtui.data import sources
from hybtui.data.training import load_training_sets
from hybtui.training.sampling import BatchSampler
from hybtui.training.grad_cache import batch_texts, loss_and_backward
from hybtui.training.loss import InfoNCELoss
from hybtui.training.optimizer import build_optimizer

from eval_xquad_r import machine  # noqa: E402  (same folder)


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
    sets = load_training_sets(["mlqa-r"], sources.data_dir_from_env(None))
    by_name = {s.name: s for s in sets}
    config = RunConfig(model=args.model, batch_size=args.batch_size, max_length=args.max_length)
    sampler = BatchSampler(sets, "hybrid", args.batch_size, seed=0, alpha=0.5)
    spec = models.encoder_spec(args.model, max_length=args.max_length)
    ours = models.load_encoder(spec, device="cpu").train()
    optimizer, _ = build_optimizer(ours, config)
    loss_fn = InfoNCELoss(0.05)

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    st = SentenceTransformer(str(models.checkpoint_dir(args.model)), device="cpu")
    st.max_seq_length = args.max_length
    st.train()
    mnrl = MultipleNegativesRankingLoss(st, scale=1 / 0.05)
    # fused AdamW: what sentence-transformers' trainer (HF Trainer, torch ≥ 2.8) uses by default
    st_optimizer = torch.optim.AdamW(st.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    prompts = (ours.prefix("query"), ours.prefix("passage"))

    def st_step(step: int) -> float:
        t0 = time.perf_counter()
        texts = batch_texts(sampler.batch(step), by_name)
        q = st.tokenize([prompts[0] + t for t in texts.queries])
        p = st.tokenize([prompts[1] + t for t in texts.passages])
        loss = mnrl([q, p], labels=None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.parameters(), 1.0)
        st_optimizer.step()
        st_optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    hybtui_step(ours, optimizer, sampler, by_name, 0, loss_fn)  # warm-up
    st_step(0)
    ours_s, st_s, drawn_s = 0.0, 0.0, 0.0
    for step in range(1, args.steps + 1):
        for tool in (("ours", "st") if step % 2 else ("st", "ours")):
            if tool == "ours":
                seconds, drawn = hybtui_step(ours, optimizer, sampler, by_name, step, loss_fn)
                ours_s += seconds
                drawn_s += drawn
            else:
                st_s += st_step(step)
        print(f"step {step}: hybtui {ours_s / step:.2f} s/step, sentence-transformers {st_s / step:.2f} s/step",
              flush=True)
    pairs = args.steps * args.batch_size
    result = {
        "command": "python benchmarks/train_throughput.py",
        "model": args.model, "batch_size": args.batch_size, "max_length": args.max_length, "steps": args.steps,
        "hybtui_pairs_per_s": round(pairs / ours_s, 2), "st_pairs_per_s": round(pairs / st_s, 2),
        "throughput_ratio": round(st_s / ours_s, 3),
        "sampler_share_of_step": round(drawn_s / ours_s, 5),
    }
    del st, st_optimizer, mnrl
    # The paper's batch 100, fp32 and bf16 autocast, hybtui's trainer step.
    paper = BatchSampler(sets, "hybrid", 100, seed=0, alpha=0.5)
    for label, bf16 in (("fp32", False), ("bf16", True)):
        hybtui_step(ours, optimizer, paper, by_name, 0, loss_fn, bf16)
        took = [hybtui_step(ours, optimizer, paper, by_name, s, loss_fn, bf16)[0] for s in range(1, args.paper_steps + 1)]
        result[f"seconds_per_step_batch100_{label}"] = round(sum(took) / len(took), 2)
        print(f"batch 100 {label}: {result[f'seconds_per_step_batch100_{label}']} s/step", flush=True)
    result.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
