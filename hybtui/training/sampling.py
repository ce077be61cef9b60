"""The samplers as the study defines them: `mono` (X-X-mono), `cross` (X-Y) and `hybrid`.

A batch is a pure function of (seed, step), so a resumed run sees exactly the batches
an uninterrupted one would have. Three kinds of random decisions, each from its own
seeded numpy stream:

* per step: the dataset (∝ its items), the batch type (mono with probability α) and
  the mono language (uniform among the languages with at least B items). They are
  drawn for blocks of `_BLOCK` steps at once from `default_rng([seed, 1, block])`,
  so a step's decisions depend on (seed, step) only and any step is cheap to reach;
* per pool: a pool is (dataset, mono language L) or (dataset, cross). Its items come
  from one permutation per pass, `default_rng([seed, 2, dataset, pool, epoch])`, so
  every item is used once per pass before any repeats. The only history is how many
  earlier steps drew from the pool, which is counted from the per-step decisions;
* per cross batch: each pair's (query, passage) languages, `default_rng([seed, 3, step])`.

A batch that straddles two passes takes the end of one and the start of the next;
items of the next pass that are already in the batch move, in order, just behind the
batch's part of that pass (`_avoid`). That never touches positions ≥ B of a pass, so a
pass's order depends on the previous pass only through its first B positions.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Literal, NamedTuple

import numpy as np

from hybtui.data.pools import LanguagePools, batch_kinds, is_int, pooled_sets
from hybtui.data.training import TrainingData
from hybtui.errors import HybtuiError

_BLOCK = 1024  # steps whose decisions are drawn together; part of the (seed, step) → batch map
_DECISIONS, _EPOCHS, _PAIRS = 1, 2, 3  # stream tags in the seed sequences
_CROSS = 0  # the pool key of a dataset's cross pool; mono pools are 1 + language index


class Pair(NamedTuple):
    """One (query, passage) training pair: `item` indexes its dataset's items."""

    item: int
    query_lang: str
    passage_lang: str


_pair = partial(tuple.__new__, Pair)  # Pair from a 3-tuple without the Python-level __new__


@dataclass(frozen=True)
class Batch:
    step: int
    type: Literal["mono", "cross"]
    dataset: str
    pairs: tuple[Pair, ...]


@dataclass(frozen=True)
class _Pool:
    dataset: int
    key: int  # _CROSS or 1 + index of the mono language in the dataset's languages
    lang: str | None  # the mono language; None for the cross pool
    members: np.ndarray  # item indices into the dataset


def _index(u: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Uniform draws u ∈ [0, 1) → indices in [0, n)."""
    return np.minimum((u * n).astype(np.int64), np.maximum(np.asarray(n) - 1, 0))


def _avoid(order: np.ndarray, taken: np.ndarray, head: int) -> np.ndarray:
    """`order` with its first `head` items free of `taken`: colliding items move, in
    order, just behind the head. Positions ≥ head + len(taken) never change."""
    collide = np.isin(order, taken)
    cut = np.flatnonzero(~collide)[head - 1] + 1
    front = order[:cut]
    return np.concatenate([front[~collide[:cut]], front[collide[:cut]], order[cut:]])


class BatchSampler:
    """The global batches of a run: `batch(step)` for any step, in any order.

    `batch_size` is the global batch (world size × per-rank batch); `shard` gives
    each rank its slice. `languages` restricts training to a subset of languages.
    """

    def __init__(
        self,
        datasets: list[TrainingData],
        strategy: str,
        batch_size: int,
        seed: int,
        alpha: float = 0.5,
        languages: Iterable[str] | None = None,
    ):
        self._views: list[LanguagePools] = pooled_sets(datasets, strategy, batch_size, alpha, languages)
        if not is_int(seed) or seed < 0:
            raise HybtuiError(f"seed must be a non-negative integer (got {seed!r})")
        self.strategy, self.batch_size, self.seed, self.alpha = strategy, int(batch_size), int(seed), alpha
        mono, cross = batch_kinds(strategy, alpha)
        self._mono_share = alpha if strategy == "hybrid" else float(mono)
        self._pools: list[_Pool] = []
        mono_first, n_mono, cross_id = [], [], []
        for d, view in enumerate(self._views):
            mono_first.append(len(self._pools))
            eligible = [lang for lang, pool in view.lang_pools.items() if mono and len(pool) >= batch_size]
            n_mono.append(len(eligible))
            for lang in eligible:
                key = 1 + view.languages.index(lang)
                self._pools.append(_Pool(d, key, lang, view.lang_pools[lang]))
            cross_id.append(len(self._pools) if cross else -1)
            if cross:
                self._pools.append(_Pool(d, _CROSS, None, view.cross_pool))
        self._mono_first, self._n_mono = np.array(mono_first), np.array(n_mono)
        self._cross_id = np.array(cross_id)
        sizes = np.array([view.size for view in self._views], dtype=np.float64)
        self._dataset_cdf = np.cumsum(sizes) / sizes.sum()
        # pool uses before each block (grown on demand), the decided blocks, the built passes
        self._uses_before: list[np.ndarray] = [np.zeros(len(self._pools), dtype=np.int64)]
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._passes: list[dict[int, np.ndarray]] = [{} for _ in self._pools]

    # ------------------------------------------------------------------ per-step decisions

    def _decide(self, block: int) -> np.ndarray:
        """The pool each step of `block` draws from."""
        u = np.random.default_rng([self.seed, _DECISIONS, block]).random((3, _BLOCK))
        dataset = np.minimum(np.searchsorted(self._dataset_cdf, u[0], side="right"), len(self._views) - 1)
        mono = u[1] < self._mono_share
        mono_pool = self._mono_first[dataset] + _index(u[2], self._n_mono[dataset])
        return np.where(mono, mono_pool, self._cross_id[dataset])

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(pool, how many earlier steps of the run drew from that pool) per step of `block`."""
        if block not in self._blocks:
            while len(self._uses_before) <= block:
                k = len(self._uses_before) - 1
                done = self._blocks[k][0] if k in self._blocks else self._decide(k)
                self._uses_before.append(self._uses_before[-1] + np.bincount(done, minlength=len(self._pools)))
            pools = self._decide(block)
            order = np.argsort(pools, kind="stable")
            ranked = pools[order]
            group_start = np.maximum.accumulate(np.where(np.r_[True, ranked[1:] != ranked[:-1]], np.arange(_BLOCK), 0))
            earlier = np.empty(_BLOCK, dtype=np.int64)
            earlier[order] = np.arange(_BLOCK) - group_start
            if len(self._blocks) >= 2:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[block] = (pools, self._uses_before[block][pools] + earlier)
        return self._blocks[block]

    # ------------------------------------------------------------------ passes over a pool

    def _raw_pass(self, p: int, epoch: int) -> np.ndarray:
        pool = self._pools[p]
        rng = np.random.default_rng([self.seed, _EPOCHS, pool.dataset, pool.key, epoch])
        return rng.permutation(len(pool.members))

    def _carry(self, n: int, epoch: int) -> int:
        """How many items of pass `epoch - 1` the batch straddling into `epoch` holds."""
        return epoch * n % self.batch_size

    def _pass(self, p: int, epoch: int) -> np.ndarray:
        """The order of pass `epoch` over pool `p` (positions into its members)."""
        built = self._passes[p]
        if epoch in built:
            return built[epoch]
        n, b = len(self._pools[p].members), self.batch_size
        # Pass e needs the built (not raw) tail of pass e-1 only when e-1 was itself
        # rearranged and that tail reaches into its first B positions.
        chain = [epoch]
        while (
            (s := chain[-1]) - 1 not in built
            and self._carry(n, s)
            and self._carry(n, s - 1)
            and n - self._carry(n, s) < b
        ):
            chain.append(s - 1)
        for s in reversed(chain):
            order, carry = self._raw_pass(p, s), self._carry(n, s)
            if carry:
                previous = built.get(s - 1)
                previous = self._raw_pass(p, s - 1) if previous is None else previous
                order = _avoid(order, previous[n - carry :], b - carry)
            built[s] = order
        for old in [e for e in built if not epoch - 1 <= e <= epoch + 1]:
            del built[old]
        return built[epoch]

    def _items(self, p: int, use: int) -> np.ndarray:
        """The items of the `use`-th batch drawn from pool `p`."""
        members, b = self._pools[p].members, self.batch_size
        epoch, start = divmod(use * b, len(members))
        order = self._pass(p, epoch)[start : start + b]
        if len(order) < b:
            order = np.concatenate([order, self._pass(p, epoch + 1)[: b - len(order)]])
        return members[order]

    # ------------------------------------------------------------------ batches

    def batch(self, step: int) -> Batch:
        """The global batch of `step` (a pure function of seed and step)."""
        if step < 0:
            raise HybtuiError(f"step must be non-negative (got {step})")
        block, offset = divmod(step, _BLOCK)
        pools, uses = self._block(block)
        pool_id = int(pools[offset])
        pool = self._pools[pool_id]
        view = self._views[pool.dataset]
        items = self._items(pool_id, int(uses[offset]))
        if pool.lang is not None:
            same = repeat(pool.lang)
            return Batch(step, "mono", view.name, tuple(map(_pair, zip(items.tolist(), same, same))))
        u = np.random.default_rng([self.seed, _PAIRS, step]).random((2, len(items)))
        k = view.n_langs[items]
        q = _index(u[0], k)
        p = _index(u[1], k - 1)
        p += p >= q  # the passage language: uniform among the item's other languages
        rows = view.lang_table[items]
        q_lang = view.lang_names[np.take_along_axis(rows, q[:, None], 1)[:, 0]]
        p_lang = view.lang_names[np.take_along_axis(rows, p[:, None], 1)[:, 0]]
        pairs = tuple(map(_pair, zip(items.tolist(), q_lang.tolist(), p_lang.tolist())))
        return Batch(step, "cross", view.name, pairs)

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        """batch(start), batch(start + 1), … up to `stop` (exclusive; None: forever)."""
        step = start
        while stop is None or step < stop:
            yield self.batch(step)
            step += 1


def shard(batch: Batch, rank: int, world_size: int) -> Batch:
    """Rank `rank`'s contiguous slice of a global batch: same step, type, dataset, languages."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise HybtuiError(f"rank {rank} is not within a world of {world_size}")
    n = len(batch.pairs)
    if n % world_size:
        raise HybtuiError(f"a batch of {n} pairs does not split evenly over {world_size} ranks")
    size = n // world_size
    return dataclasses.replace(batch, pairs=batch.pairs[rank * size : (rank + 1) * size])


def summarize(batches: Iterable[Batch]) -> dict:
    """What a run of batches trained on: batch types, datasets, mono languages (batches
    per language) and cross (query, passage) language pairs (pairs per combination)."""
    types: Counter[str] = Counter()
    datasets: Counter[str] = Counter()
    mono: Counter[str] = Counter()
    cross: dict[str, Counter[str]] = {}
    for batch in batches:
        types[batch.type] += 1
        datasets[batch.dataset] += 1
        if batch.type == "mono":
            mono[batch.pairs[0].query_lang] += 1
        else:
            for pair in batch.pairs:
                cross.setdefault(pair.query_lang, Counter())[pair.passage_lang] += 1
    n = sum(types.values())
    return {
        "batches": n,
        "type_fractions": {t: (types[t] / n if n else 0.0) for t in ("mono", "cross")},
        "datasets": dict(sorted(datasets.items())),
        "mono_languages": dict(sorted(mono.items())),
        "cross_pairs": {q: dict(sorted(c.items())) for q, c in sorted(cross.items())},
    }


def batch_to_json(batch: Batch, datasets: list[TrainingData]) -> dict:
    """The batch as a JSON-ready record, with item ids instead of indices."""
    ts = next(ts for ts in datasets if ts.name == batch.dataset)
    ids = ts.item_ids([p.item for p in batch.pairs])
    return {
        "step": batch.step,
        "type": batch.type,
        "dataset": batch.dataset,
        "pairs": [
            {"item": item_id, "query_lang": p.query_lang, "passage_lang": p.passage_lang}
            for item_id, p in zip(ids, batch.pairs)
        ],
    }
