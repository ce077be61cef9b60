"""Encoders: a Hugging Face checkpoint + tokenizer + pooling + prefixes + L2 norm.

The bi-encoder of DESIGN.md §1: one shared transformer for queries and passages,
pooled (mean over real tokens, or the CLS vector), L2-normalised so that the dot
product is the cosine. Queries and passages get their own text prefixes ("query: " /
"passage: " for E5 models).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from hybtui.errors import HybtuiError

Pooling = Literal["mean", "cls"]
TextKind = Literal["query", "passage"]

#: Called as progress(texts_done, texts_total) while encoding.
EncodeProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class EncoderSpec:
    """How to turn a checkpoint into a sentence encoder."""

    source: str
    pooling: Pooling = "mean"
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int = 512
    normalize: bool = True


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise HybtuiError(f"unknown device '{device}' (use cpu, cuda, cuda:N or auto)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise HybtuiError(f"device '{device}' requested but CUDA is not available on this machine")
    return resolved


class Encoder(torch.nn.Module):
    """A pooled, normalised sentence encoder around a transformer backbone.

    `forward` works on a tokenised batch and keeps gradients (the trainer uses it);
    `encode` is the inference path: it tokenises everything once, sorts by token
    length so each batch is padded only to its own longest text, and runs under
    `torch.inference_mode` (optionally with bf16 autocast).
    """

    def __init__(self, backbone: torch.nn.Module, tokenizer, spec: EncoderSpec):
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.spec = spec

    @classmethod
    def from_pretrained(cls, spec: EncoderSpec, device: str | None = None) -> Encoder:
        """Load a local checkpoint directory (or a hub id when the hub is reachable)."""
        from transformers import AutoModel, AutoTokenizer

        path = Path(spec.source).expanduser()
        looks_local = path.exists() or spec.source.startswith((".", "/", "~")) or spec.source.count("/") > 1
        if looks_local and not path.is_dir():
            raise HybtuiError(f"model path {path} does not exist")
        if looks_local and not (path / "config.json").is_file():
            raise HybtuiError(f"{path} is not a Hugging Face model directory (no config.json)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path) if looks_local else spec.source)
            backbone = AutoModel.from_pretrained(str(path) if looks_local else spec.source)
        except OSError as exc:
            raise HybtuiError(f"could not load model '{spec.source}': {exc}") from exc
        encoder = cls(backbone, tokenizer, spec)
        return encoder.to(resolve_device(device)).eval()

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    def prefix(self, kind: TextKind) -> str:
        return self.spec.query_prefix if kind == "query" else self.spec.passage_prefix

    def tokenize(self, texts: Sequence[str], kind: TextKind) -> dict[str, torch.Tensor]:
        """Tokenise and pad one batch (used by training)."""
        prefix = self.prefix(kind)
        batch = self.tokenizer(
            [prefix + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.spec.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
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
        ids = self.tokenizer(
            [prefix + t for t in texts],
            truncation=True,
            max_length=self.spec.max_length,
            add_special_tokens=True,
        )["input_ids"]
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


def encoder_spec(
    model: str,
    pooling: str | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    max_length: int | None = None,
) -> EncoderSpec:
    """The spec for `model` with any explicitly given option overriding its defaults."""
    if pooling not in (None, "mean", "cls"):
        raise HybtuiError(f"unknown pooling '{pooling}' (use mean or cls)")
    if max_length is not None and max_length < 1:
        raise HybtuiError(f"--max-length must be at least 1 (got {max_length})")
    base = EncoderSpec(source=model)
    overrides = {
        "pooling": pooling,
        "query_prefix": query_prefix,
        "passage_prefix": passage_prefix,
        "max_length": max_length,
    }
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def load_encoder(
    spec: EncoderSpec, device: str | None = None, progress: Callable[[str], None] | None = None
) -> Encoder:
    """Load the encoder a spec describes, on `device` (auto: CUDA when available)."""
    if progress:
        progress(f"loading {spec.source}")
    return Encoder.from_pretrained(spec, device)
