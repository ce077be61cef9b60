"""The trainer: loss maths, GradCache and data parallelism against single-process maths,
exact resumption, every sampler end to end, and configuration errors."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.modeling import encoder as models
from hybtui.training.callbacks import Events
from hybtui.training.distributed import DistContext
from hybtui.training.grad_cache import BatchTexts, length_chunks, loss_and_backward
from hybtui.training.loss import InfoNCELoss
from hybtui.training.trainer import Trainer

QUERIES = ["Wer gewann?", "Who won the game?", "¿Quién ganó?", "Кто победил?", "谁赢了？", "Ai thắng?"]
PASSAGES = [
    "Die Broncos gewannen.",
    "The Broncos won the game.",
    "Los Broncos ganaron.",
    "Бронкос победили.",
    "野马队赢了。",
    "Broncos đã thắng.",
]
NEGATIVES = ["Ein anderer Satz.", "Another sentence entirely."]


def test_info_nce_matches_hand_computation():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 5), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(4, 5), dim=-1)  # 3 positives + 1 hard negative
    tau = 0.05
    logits = (q @ p.T / tau).numpy()
    expected = np.mean([np.log(np.exp(logits[i]).sum()) - logits[i, i] for i in range(3)])
    assert InfoNCELoss(tau)(q, p).item() == pytest.approx(expected, rel=1e-5)
    back = (p[:3] @ q.T / tau).numpy()
    expected_back = np.mean([np.log(np.exp(back[i]).sum()) - back[i, i] for i in range(3)])
    assert InfoNCELoss(tau, symmetric=True)(q, p).item() == pytest.approx((expected + expected_back) / 2, rel=1e-5)


def _gradients(encoder):
    return {n: p.grad.detach().clone() for n, p in encoder.named_parameters() if p.grad is not None}


def _fresh(tiny_encoder):
    encoder = models.load_encoder(models.encoder_spec(str(models.checkpoint_dir("tiny"))), device="cpu")
    encoder.train()
    return encoder


@pytest.mark.parametrize("symmetric", [False, True])
def test_grad_cache_equals_full_batch_gradients(tiny_encoder, symmetric):
    """Without dropout, GradCache (chunks of 2) and length-sorted forward groups give the
    loss and gradients of one full-batch forward."""
    encoder = _fresh(tiny_encoder)
    encoder.eval()
    texts = BatchTexts(QUERIES, PASSAGES, NEGATIVES)
    loss_fn = InfoNCELoss(0.05, symmetric)
    full = loss_and_backward(encoder, texts, loss_fn, forward_chunk=0)  # one forward per side
    full_grads = _gradients(encoder)
    for chunked in ({"grad_cache_chunk": 2}, {"forward_chunk": 3}):  # GradCache; length-sorted groups
        encoder.zero_grad(set_to_none=True)
        assert loss_and_backward(encoder, texts, loss_fn, **{"forward_chunk": 0, **chunked}) == pytest.approx(
            full, abs=1e-6
        )
        for name, grad in _gradients(encoder).items():
            torch.testing.assert_close(grad, full_grads[name], atol=1e-5, rtol=1e-4)


def test_grad_cache_replays_dropout_masks(tiny_encoder):
    """With dropout on, the second (gradient) pass must see the masks of the first pass:
    the result equals back-propagating through the same chunked forward directly."""
    encoder = _fresh(tiny_encoder)
    texts = BatchTexts(QUERIES, PASSAGES, NEGATIVES)
    loss_fn = InfoNCELoss(0.05)
    torch.manual_seed(5)
    cached = loss_and_backward(encoder, texts, loss_fn, grad_cache_chunk=4)
    cached_grads = _gradients(encoder)
    encoder.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    embeddings = []
    for batch in (
        encoder.tokenize(texts.queries, "query"),
        encoder.tokenize(texts.passages + texts.hard_negatives, "passage"),
    ):
        parts = length_chunks(batch["attention_mask"], 4)
        chunks = [encoder(batch["input_ids"][rows, :w], batch["attention_mask"][rows, :w]) for rows, w in parts]
        order = torch.cat([rows for rows, _ in parts])
        embeddings.append(torch.cat(chunks)[torch.argsort(order)])
    q_emb, p_emb = embeddings
    direct = loss_fn(q_emb, p_emb)
    direct.backward()
    assert cached == pytest.approx(float(direct.detach()), abs=1e-6)
    for name, grad in _gradients(encoder).items():
        torch.testing.assert_close(cached_grads[name], grad, atol=1e-5, rtol=1e-4)


def _ddp_worker(rank, world, init_file, model_dir, out_dir):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    encoder = models.load_encoder(models.encoder_spec(model_dir), device="cpu")
    encoder.eval()  # no dropout: ranks draw different masks than the single process
    n = len(QUERIES) // world
    part = slice(rank * n, (rank + 1) * n)
    negatives = NEGATIVES[rank : rank + 1]
    ctx = DistContext(rank, world)
    loss = loss_and_backward(
        encoder, BatchTexts(QUERIES[part], PASSAGES[part], negatives), InfoNCELoss(0.05, symmetric=True), ctx
    )
    params = [p for p in encoder.parameters() if p.requires_grad]
    ctx.average_gradients(params)
    if rank == 0:
        torch.save({"loss": loss, "grads": _gradients(encoder)}, Path(out_dir) / "ddp.pt")
    torch.distributed.destroy_process_group()


def test_two_process_data_parallel_equals_single_process(tiny_encoder, tmp_path):
    """2 gloo ranks, passages gathered with gradient: loss and gradients equal one process
    training on the same global batch (whose hard negatives are both ranks' negatives)."""
    model_dir = str(models.checkpoint_dir("tiny"))
    init_file = tempfile.mktemp(dir=tmp_path)
    mp.spawn(_ddp_worker, args=(2, init_file, model_dir, str(tmp_path)), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    encoder = models.load_encoder(models.encoder_spec(model_dir), device="cpu")
    encoder.eval()
    # The single process sees passages ordered as the gather lays them out: positives of
    # all ranks, then the hard negatives of all ranks.
    single = loss_and_backward(encoder, BatchTexts(QUERIES, PASSAGES, NEGATIVES[:2]), InfoNCELoss(0.05, True))
    assert ddp["loss"] == pytest.approx(single, abs=1e-5)
    grads = _gradients(encoder)
    assert set(grads) == set(ddp["grads"])
    for name, grad in grads.items():
        torch.testing.assert_close(ddp["grads"][name], grad, atol=1e-5, rtol=1e-4)


class Recorder(Events):
    def __init__(self):
        self.steps, self.evals, self.validation, self.checkpoints = [], [], [], []
        self.eval_progress = {}

    def on_step(self, report):
        self.steps.append(report)

    def on_eval(self, step, rows, final):
        self.evals.append((step, final, rows))

    def on_validation(self, step, loss):
        self.validation.append((step, loss))

    def on_eval_progress(self, step, final, label, done, total):
        self.eval_progress.setdefault((step, final, label), []).append((done, total))

    def on_checkpoint(self, step, path):
        self.checkpoints.append((step, path))


def _config(**changes):
    base = {
        "model": "tiny",
        "train": ["mlqa-r:en,de,es"],
        "eval": ["xquad-r:en,de,el"],
        "steps": 3,
        "batch_size": 8,
        "warmup_steps": 1,
        "max_length": 32,
        "eval_every": 0,
        "validation_fraction": 0.05,
        "device": "cpu",
        "lr": 1e-4,
    }
    return RunConfig.from_dict({**base, **changes})


@pytest.mark.parametrize("sampler", ["mono", "cross", "hybrid"])
def test_smoke_run_every_sampler(shared_data, tmp_path, sampler):
    events = Recorder()
    trainer = Trainer(_config(sampler=sampler, eval_every=2, eval_max_queries=10), tmp_path, events, shared_data)
    result = trainer.run()
    assert result.status == "finished" and result.step == 3
    assert [r.step for r in events.steps] == [1, 2, 3]
    assert all(np.isfinite(r.loss) and r.loss > 0 for r in events.steps)
    expected = {"mono"} if sampler == "mono" else {"cross"} if sampler == "cross" else {"mono", "cross"}
    assert {r.batch_type for r in events.steps} <= expected
    assert [(step, final) for step, final, _ in events.evals] == [(2, False), (3, True)]
    # Each encoding of each evaluation told at most its four quarters, the last at its end.
    assert {key[:2] for key in events.eval_progress} == {(2, False), (3, True)}
    for told in events.eval_progress.values():
        dones = [done for done, _ in told]
        assert 1 <= len(told) <= 4 and dones == sorted(set(dones)) and told[-1][0] == told[-1][1]
    final_rows = events.evals[-1][2]
    seen = {r.query_lang: r.seen for r in final_rows if r.setting == "multi" and r.query_lang != "avg"}
    assert seen == {"en": "seen", "de": "seen", "el": "unseen"}
    # A finished run keeps its final encoder, not the trainer state (issue 12: disk).
    assert events.validation and not (result.model_dir / "trainer_state.pt").exists()
    assert (result.model_dir / "modules.json").is_file()


def test_resume_reproduces_the_uninterrupted_losses(shared_data, tmp_path):
    config = _config(sampler="hybrid", steps=6, eval=[], validation_fraction=0.0, checkpoint_every=3)
    straight = Recorder()
    Trainer(config, tmp_path / "a", straight, shared_data).run()
    first = Recorder()
    interrupted = Trainer(config.replace(steps=6), tmp_path / "b", first, shared_data)
    interrupted.events.on_step = lambda r: (first.steps.append(r), r.step == 3 and interrupted.request_stop())
    result = interrupted.run()
    assert result.status == "cancelled" and result.step == 3
    resumed = Recorder()
    Trainer(config, tmp_path / "b", resumed, shared_data).run(resume_from=tmp_path / "b/checkpoints/step-0000003")
    losses = [r.loss for r in first.steps] + [r.loss for r in resumed.steps]
    assert [r.step for r in resumed.steps] == [4, 5, 6]
    np.testing.assert_allclose(losses, [r.loss for r in straight.steps], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 1.5}, "--alpha must be within"),
        ({"steps": -1}, "--steps must be 0 or more"),
        ({"sampler": "crossed"}, "--sampler must be one of"),
        ({"temperature": 0}, "--temperature must be positive"),
    ],
)
def test_invalid_configurations(changes, message):
    with pytest.raises(HybtuiError, match=message):
        _config(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampler": "cross", "train": ["mlqa-r:en"]}, "language"),
        ({"sampler": "hybrid", "train": ["mlqa-r:de"]}, "language"),
        ({"sampler": "mono", "batch_size": 100000}, "batch"),
        ({"train": ["mlqa-r:en,xx"]}, "unknown language"),
    ],
)
def test_data_dependent_errors_come_before_the_model_loads(shared_data, tmp_path, changes, message):
    with pytest.raises(HybtuiError, match=message):
        Trainer(_config(**changes), tmp_path, Recorder(), shared_data)
    assert not any(tmp_path.iterdir()), "nothing may be written for a rejected configuration"


@pytest.mark.slow
def test_me5_small_loss_falls(shared_data, tmp_path):
    events = Recorder()
    config = _config(
        model="me5-small",
        sampler="hybrid",
        steps=40,
        batch_size=16,
        lr=5e-5,
        warmup_steps=4,
        eval=[],
        freeze_embeddings=True,
        train=["mlqa-r"],
        validation_fraction=0.0,
    )
    Trainer(config, tmp_path, events, shared_data).run()
    losses = [r.loss for r in events.steps]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses
