"""How a checkpoint becomes a sentence encoder (`EncoderSpec`), and the sentence-transformers
format that records it on disk: pooling, dense layers, normalisation, prompts and length.

Saved encoders are sentence-transformers checkpoints (`SentenceTransformer(path)` gives
the same embeddings); checkpoints of either format version are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from hybtui.errors import HybtuiError
from hybtui.modeling.registry import Pooling


@dataclass(frozen=True)
class EncoderSpec:
    """How to turn a checkpoint into a sentence encoder; None means "not set here"."""

    source: str
    pooling: Pooling | None = None
    query_prefix: str | None = None
    passage_prefix: str | None = None
    max_length: int | None = None
    normalize: bool | None = None

    def filled_from(self, other: EncoderSpec) -> EncoderSpec:
        """This spec with its unset fields taken from `other`."""
        return replace(self, **{f.name: getattr(other, f.name) for f in fields(self) if getattr(self, f.name) is None})


GENERIC_DEFAULTS = EncoderSpec("", "mean", "", "", 512, True)


@dataclass(frozen=True)
class SentenceTransformersConfig:
    spec: EncoderSpec
    #: directories of Dense modules, applied in order after pooling
    dense: tuple[Path, ...] = ()


def read_sentence_transformers_config(path: Path) -> SentenceTransformersConfig | None:
    """Pooling, dense layers, normalisation, prompts and length of a sentence-transformers
    checkpoint (legacy and 6.x formats), or None for a plain Hugging Face checkpoint."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text())
        pooling, dense, normalize = None, [], False
        for module in modules:
            kind = module["type"].rsplit(".", 1)[-1]
            if kind == "Pooling":
                cfg = json.loads((path / module["path"] / "config.json").read_text())
                mode = cfg.get("pooling_mode") or ("cls" if cfg.get("pooling_mode_cls_token") else "mean")
                if mode not in ("mean", "cls"):
                    raise HybtuiError(f"{path}: pooling mode '{mode}' is not supported (mean or cls)")
                pooling = mode
            elif kind == "Dense":
                dense.append(path / module["path"])
            elif kind == "Normalize":
                normalize = True
        prompts, max_length = {}, None
        if (path / "config_sentence_transformers.json").is_file():
            prompts = json.loads((path / "config_sentence_transformers.json").read_text()).get("prompts") or {}
        if (path / "sentence_bert_config.json").is_file():
            max_length = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HybtuiError(f"{path}: unreadable sentence-transformers configuration ({exc})") from exc
    spec = EncoderSpec(
        str(path), pooling, prompts.get("query"), prompts.get("passage", prompts.get("document")), max_length, normalize
    )
    return SentenceTransformersConfig(spec, tuple(dense))


def write_sentence_transformers_config(path: Path, spec: EncoderSpec, dim: int, dense: int = 0) -> None:
    """The files that make `path` a sentence-transformers checkpoint (legacy module names,
    which every sentence-transformers version reads), with the prefixes as prompts."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    modules += [
        {"idx": 2 + i, "name": str(2 + i), "path": f"{2 + i}_Dense", "type": "sentence_transformers.models.Dense"}
        for i in range(dense)
    ]
    if spec.normalize:
        n = len(modules)
        modules.append(
            {"idx": n, "name": str(n), "path": f"{n}_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
        (path / f"{n}_Normalize").mkdir(parents=True, exist_ok=True)
    (path / "1_Pooling").mkdir(parents=True, exist_ok=True)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": spec.pooling == "cls",
        "pooling_mode_mean_tokens": spec.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    prompts = {
        "query": spec.query_prefix or "",
        "passage": spec.passage_prefix or "",
        "document": spec.passage_prefix or "",
    }
    files = {
        "modules.json": modules,
        "1_Pooling/config.json": pooling,
        "sentence_bert_config.json": {"max_seq_length": spec.max_length, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": prompts,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }
    for name, content in files.items():
        (path / name).write_text(json.dumps(content, indent=2))


def load_dense(directory: Path) -> torch.nn.Module:
    cfg = json.loads((directory / "config.json").read_text())
    linear = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    weights = directory / "model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        state = load_file(weights)
    else:
        state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    activation = cfg.get("activation_function", "torch.nn.modules.linear.Identity").rsplit(".", 1)[-1]
    if activation not in ("Tanh", "Identity"):
        raise HybtuiError(f"{directory}: dense activation {activation} is not supported (Tanh or Identity)")
    return torch.nn.Sequential(linear, torch.nn.Tanh() if activation == "Tanh" else torch.nn.Identity())


def save_dense(layer: torch.nn.Sequential, directory: Path) -> None:
    """A (Linear, activation) layer as a sentence-transformers Dense module."""
    from safetensors.torch import save_file

    linear = layer[0]
    directory.mkdir(exist_ok=True)
    activation = (
        "torch.nn.modules.activation.Tanh"
        if isinstance(layer[1], torch.nn.Tanh)
        else "torch.nn.modules.linear.Identity"
    )
    (directory / "config.json").write_text(
        json.dumps(
            {
                "in_features": linear.in_features,
                "out_features": linear.out_features,
                "bias": linear.bias is not None,
                "activation_function": activation,
            }
        )
    )
    save_file(
        {f"linear.{k}": v.detach().cpu().contiguous() for k, v in linear.state_dict().items()},
        directory / "model.safetensors",
    )
