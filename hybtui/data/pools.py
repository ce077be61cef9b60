"""A training set as the samplers see it: its items per language (the mono pools) and its
items in two or more languages (the cross pool), with the checks that the data can fill
the batches a sampler draws.

A sampler is `mono` (X-X-mono: every pair in one language), `cross` (X-Y: query and
passage in two different languages of an item) or `hybrid` (each batch mono with
probability α, else cross).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from hybtui.config import SAMPLERS
from hybtui.data.training import TrainingData
from hybtui.errors import HybtuiError


class LanguagePools:
    """A training set restricted to the selected languages, with its pools: numpy arrays
    of item indices, built from the set's item × language presence without a Python loop
    over items (a set may hold millions of rows)."""

    def __init__(self, ts: TrainingData, languages: frozenset[str] | None):
        self.name = ts.name
        selected = [c for c, lang in enumerate(ts.languages) if languages is None or lang in languages]
        has = ts.presence()[:, selected]
        present = has.any(axis=0)
        has = has[:, present]
        self.languages = tuple(ts.languages[c] for c, here in zip(selected, present.tolist()) if here)
        self.n_langs = has.sum(axis=1, dtype=np.int64)
        self.size = int(np.count_nonzero(self.n_langs))
        self.lang_pools = {lang: np.flatnonzero(has[:, c]) for c, lang in enumerate(self.languages)}
        self.cross_pool = np.flatnonzero(self.n_langs >= 2)
        # item × k → index into `lang_names` of the item's k-th language (vectorised pair drawing):
        # a stable sort puts each item's languages first, in `languages` (sorted) order.
        self.lang_names = np.array(self.languages, dtype=object)
        self.lang_table = np.argsort(~has, axis=1, kind="stable")[:, : self.n_langs.max(initial=0)]


def is_int(value: object) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def batch_kinds(strategy: str, alpha: float) -> tuple[bool, bool]:
    """(draws mono batches, draws cross batches)."""
    if strategy == "mono":
        return True, False
    if strategy == "cross":
        return False, True
    return alpha > 0, alpha < 1


def pooled_sets(
    datasets: list[TrainingData], strategy: str, batch_size: int, alpha: float, languages: Iterable[str] | None
) -> list[LanguagePools]:
    """The pools of each training set, once the sampler settings are checked against them:
    everything the sampler needs to draw from must be there."""
    if strategy not in SAMPLERS:
        raise HybtuiError(f"unknown sampler '{strategy}'; available: {', '.join(SAMPLERS)}")
    if not is_int(batch_size) or batch_size < 1:
        raise HybtuiError(f"batch size must be a positive integer (got {batch_size!r})")
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise HybtuiError(f"alpha (the mono share of hybrid batches) must be within [0, 1] (got {alpha})")
    if not datasets:
        raise HybtuiError("no training data: the sampler needs at least one training set")
    names = Counter(ts.name for ts in datasets)
    twice = [name for name, n in names.items() if n > 1]
    if twice:
        raise HybtuiError(f"training set name(s) {', '.join(repr(n) for n in twice)} given twice; names must be unique")
    selected = None if languages is None else frozenset(languages)
    if selected is not None:
        available = ", ".join(sorted({lang for ts in datasets for lang in ts.languages}))
        unknown = sorted(selected.difference(*(ts.languages for ts in datasets)))
        if not selected:
            raise HybtuiError(f"no training language selected; available: {available}")
        if unknown:
            raise HybtuiError(
                f"training language(s) {', '.join(unknown)} not in the training data; available: {available}"
            )
    mono, cross = batch_kinds(strategy, alpha)
    views = [LanguagePools(ts, selected) for ts in datasets]
    for view in views:
        where = f"training set '{view.name}'"
        if not view.size:
            raise HybtuiError(f"{where} has no items" + ("" if selected is None else " in the selected languages"))
        if mono and max(len(pool) for pool in view.lang_pools.values()) < batch_size:
            sizes = ", ".join(f"{lang} {len(pool)}" for lang, pool in view.lang_pools.items())
            raise HybtuiError(
                f"batch size {batch_size} exceeds every mono language pool of {where} ({sizes} items); "
                f"a mono batch needs one language with at least {batch_size} items"
            )
        if cross:
            if len(view.languages) < 2:
                raise HybtuiError(
                    f"sampler '{strategy}' draws cross-lingual batches, but {where} has the single language "
                    f"{view.languages[0]}; use --sampler mono"
                )
            if not len(view.cross_pool):
                raise HybtuiError(
                    f"sampler '{strategy}' draws cross-lingual batches, but no item of {where} exists in two "
                    f"languages (it has {', '.join(view.languages)}, each item in one)"
                )
            if len(view.cross_pool) < batch_size:
                raise HybtuiError(
                    f"batch size {batch_size} exceeds the cross pool of {where}: only {len(view.cross_pool)} "
                    "items exist in two or more languages"
                )
    return views
