"""The batch samplers as the study defines them: every invariant as a property over generated
datasets, the statistics of the random choices, the real MLQA-R data, every bad input."""

import math
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hybtui.data.checks import validate_sampler
from hybtui.data.training import ParallelItem, TrainingSet, load_training_sets
from hybtui.errors import HybtuiError
from hybtui.training.sampling import Batch, BatchSampler, Pair, batch_to_json, shard, summarize

LANGS = ("de", "en", "fr", "sw")
PROPERTY = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def make_set(name: str, item_langs: list[list[str]]) -> TrainingSet:
    return TrainingSet(
        name,
        tuple(
            ParallelItem(f"{name}/{i}", {lang: (f"q{i}-{lang}", f"p{i}-{lang}") for lang in langs}, {})
            for i, langs in enumerate(item_langs)
        ),
    )


def pools(ts: TrainingSet, languages=None) -> tuple[dict[str, set[int]], set[int]]:
    """Independent of the sampler: (mono language → items, cross pool) under a language filter."""
    keep = [[lang for lang in item.texts if languages is None or lang in languages] for item in ts.items]
    mono = {}
    for i, langs in enumerate(keep):
        for lang in langs:
            mono.setdefault(lang, set()).add(i)
    return mono, {i for i, langs in enumerate(keep) if len(langs) >= 2}


@st.composite
def setups(draw, strategies=("mono", "cross", "hybrid")):
    """(datasets, strategy, batch size, alpha, languages): valid by construction."""
    sets = []
    for d in range(draw(st.integers(1, 3))):
        n = draw(st.integers(2, 30))
        item_langs = draw(st.lists(st.sets(st.sampled_from(LANGS), min_size=1), min_size=n, max_size=n))
        sets.append(make_set(f"set{d}", [sorted(langs) for langs in item_langs]))
    strategy = draw(st.sampled_from(strategies))
    alpha = draw(st.sampled_from([0.0, 1.0]) | st.floats(0, 1))
    present = sorted({lang for ts in sets for lang in ts.languages})
    languages = draw(st.none() | st.sets(st.sampled_from(present), min_size=1))
    mono_needed = strategy == "mono" or (strategy == "hybrid" and alpha > 0)
    cross_needed = strategy == "cross" or (strategy == "hybrid" and alpha < 1)
    limit = math.inf
    for ts in sets:
        mono, cross = pools(ts, languages)
        assume(mono)  # every set has items in the selected languages
        if mono_needed:
            limit = min(limit, max(len(p) for p in mono.values()))
        if cross_needed:
            limit = min(limit, len(cross))
    assume(limit >= 1)
    batch_size = draw(st.integers(1, min(limit, 12)))
    return sets, strategy, batch_size, alpha, languages


def check_batch(batch: Batch, step: int, sets, strategy, batch_size, alpha, languages) -> None:
    by_name = {ts.name: ts for ts in sets}
    assert batch.step == step
    assert batch.dataset in by_name  # one dataset per batch
    ts = by_name[batch.dataset]
    mono_pools, _ = pools(ts, languages)
    items = [p.item for p in batch.pairs]
    assert len(items) == batch_size
    assert len(set(items)) == batch_size  # never the same item twice
    allowed_type = {"mono": {"mono"}, "cross": {"cross"}}.get(strategy) or (
        {"cross"} if alpha == 0 else {"mono"} if alpha == 1 else {"mono", "cross"}
    )
    assert batch.type in allowed_type
    if batch.type == "mono":
        (lang,) = {p.query_lang for p in batch.pairs} | {p.passage_lang for p in batch.pairs}
        assert len(mono_pools[lang]) >= batch_size  # only languages with at least B items
        assert all(i in mono_pools[lang] for i in items)
    else:
        for p in batch.pairs:
            langs = ts.items[p.item].texts
            assert p.query_lang != p.passage_lang
            assert p.query_lang in langs and p.passage_lang in langs
            assert languages is None or {p.query_lang, p.passage_lang} <= languages


def assert_passes(stream: list[int], members: set[int]) -> None:
    """Every full pass of `stream` over the pool holds each member once; the rest are members."""
    n = len(members)
    for start in range(0, len(stream) - n + 1, n):
        assert sorted(stream[start : start + n]) == sorted(members), start
    assert set(stream[len(stream) // n * n :]) <= members


@PROPERTY
@given(setups(), st.integers(0, 2**32))
def test_every_batch_keeps_the_invariants(setup, seed):
    sampler = BatchSampler(*setup[:3], seed, alpha=setup[3], languages=setup[4])
    for step, batch in enumerate(sampler.batches(0, 60)):
        check_batch(batch, step, *setup)


@PROPERTY
@given(setups(), st.integers(0, 2**32), st.lists(st.integers(0, 2600), min_size=1, max_size=8), st.randoms())
def test_a_batch_is_a_pure_function_of_seed_and_step(setup, seed, steps, rnd):
    def sampler():
        return BatchSampler(*setup[:3], seed, alpha=setup[3], languages=setup[4])

    sequential = list(sampler().batches(0, max(steps) + 1))
    reused = sampler()
    rnd.shuffle(steps)
    for step in steps:
        assert reused.batch(step) == sequential[step] == sampler().batch(step)


@PROPERTY
@given(setups(), st.integers(0, 2**32))
def test_each_pool_uses_every_item_once_per_pass(setup, seed):
    sets, strategy, batch_size, alpha, languages = setup
    sampler = BatchSampler(sets, strategy, batch_size, seed, alpha=alpha, languages=languages)
    streams: dict[tuple[str, str | None], list[int]] = {}
    for batch in sampler.batches(0, 150):
        key = (batch.dataset, batch.pairs[0].query_lang if batch.type == "mono" else None)
        streams.setdefault(key, []).extend(p.item for p in batch.pairs)
    by_name = {ts.name: ts for ts in sets}
    for (name, lang), stream in streams.items():
        mono, cross = pools(by_name[name], languages)
        assert_passes(stream, cross if lang is None else mono[lang])


@pytest.mark.parametrize("n_items,batch_size", [(7, 4), (5, 3), (10, 9), (11, 6), (9, 9), (13, 5)])
def test_pass_boundaries_stay_duplicate_free_when_passes_are_short(n_items, batch_size):
    """N < 2B: a batch can straddle a pass whose own start was rearranged. 1100 steps
    cross a block of per-step decisions (1024 steps)."""
    sampler = BatchSampler([make_set("s", [["en"]] * n_items)], "mono", batch_size, seed=3)
    stream = []
    for batch in sampler.batches(0, 1100):
        items = [p.item for p in batch.pairs]
        assert len(set(items)) == batch_size
        stream += items
    assert_passes(stream, set(range(n_items)))
    far = BatchSampler([make_set("s", [["en"]] * n_items)], "mono", batch_size, seed=3)
    assert far.batch(1099) == batch


def test_each_pass_is_a_fresh_shuffle():
    sampler = BatchSampler([make_set("s", [["en"]] * 12)], "mono", 4, seed=5)
    stream = [p.item for b in sampler.batches(0, 60) for p in b.pairs]
    passes = [stream[i : i + 12] for i in range(0, len(stream), 12)]
    assert all(a != b for a, b in zip(passes, passes[1:]))


@PROPERTY
@given(setups(), st.integers(0, 2**32), st.integers(0, 40), st.data())
def test_shards_concatenate_to_the_global_batch(setup, seed, step, data):
    sets, strategy, batch_size, alpha, languages = setup
    world_size = data.draw(st.sampled_from([w for w in range(1, batch_size + 1) if batch_size % w == 0]))
    batch = BatchSampler(sets, strategy, batch_size, seed, alpha=alpha, languages=languages).batch(step)
    parts = [shard(batch, rank, world_size) for rank in range(world_size)]
    assert sum((part.pairs for part in parts), ()) == batch.pairs
    assert all(len(part.pairs) == batch_size // world_size for part in parts)
    assert {(part.step, part.type, part.dataset) for part in parts} == {(batch.step, batch.type, batch.dataset)}
    if batch.type == "mono":
        assert {p.query_lang for part in parts for p in part.pairs} == {batch.pairs[0].query_lang}


def test_shard_rejects_uneven_splits_and_bad_ranks():
    batch = Batch(0, "mono", "s", tuple(Pair(i, "en", "en") for i in range(6)))
    with pytest.raises(HybtuiError, match="6 pairs does not split evenly over 4 ranks"):
        shard(batch, 0, 4)
    with pytest.raises(HybtuiError, match="rank 3 is not within a world of 3"):
        shard(batch, 3, 3)


# ---------------------------------------------------------------- statistics


def within(count: int, n: int, p: float, sds: float = 4.5) -> bool:
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p)) + 1e-9


PARALLEL = make_set("par", [["de", "en", "fr"]] * 60 + [["en", "sw"]] * 40)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_hybrid_mono_fraction_is_alpha(alpha):
    n = 4000
    types = Counter(b.type for b in BatchSampler([PARALLEL], "hybrid", 8, 11, alpha).batches(0, n))
    assert within(types["mono"], n, alpha)
    assert types["mono"] + types["cross"] == n


def test_datasets_are_chosen_by_size():
    sizes = {"small": 20, "medium": 60, "large": 120}
    sets = [make_set(name, [["en", "de"]] * size) for name, size in sizes.items()]
    n = 4000
    counts = Counter(b.dataset for b in BatchSampler(sets, "hybrid", 10, 5).batches(0, n))
    total = sum(sizes.values())
    for name, size in sizes.items():
        assert within(counts[name], n, size / total), (name, counts)


def test_mono_languages_are_uniform_among_those_with_a_full_batch():
    ts = make_set("s", [["de", "en", "sw"]] * 30 + [["de", "en"]] * 20 + [["fr"]] * 45)
    n = 3000
    counts = Counter(b.pairs[0].query_lang for b in BatchSampler([ts], "mono", 48, 9).batches(0, n))
    assert set(counts) == {"de", "en"}  # sw (30 items) and fr (45) cannot fill a batch of 48
    assert within(counts["de"], n, 0.5)
    counts = Counter(b.pairs[0].query_lang for b in BatchSampler([ts], "mono", 30, 9).batches(0, n))
    assert set(counts) == {"de", "en", "sw", "fr"}
    assert all(within(c, n, 0.25) for c in counts.values()), counts


def test_cross_language_pairs_are_uniform_over_the_items_ordered_pairs():
    ts = make_set("s", [["de", "en", "fr"]] * 50)
    pairs = Counter(
        (p.query_lang, p.passage_lang) for b in BatchSampler([ts], "cross", 25, 2).batches(0, 400) for p in b.pairs
    )
    n = sum(pairs.values())
    assert len(pairs) == 6
    assert all(within(c, n, 1 / 6) for c in pairs.values()), pairs


def test_different_seeds_give_different_runs():
    a = [b.pairs for b in BatchSampler([PARALLEL], "hybrid", 8, 1).batches(0, 20)]
    b = [b.pairs for b in BatchSampler([PARALLEL], "hybrid", 8, 2).batches(0, 20)]
    assert a != b


# ---------------------------------------------------------------- real data, summaries


def test_mlqa_r_batches(shared_data):
    (ts,) = load_training_sets(["mlqa-r"], shared_data)
    setup = ([ts], "hybrid", 100, 0.5, None)
    batches = list(BatchSampler([ts], "hybrid", 100, 42).batches(0, 300))
    for step, batch in enumerate(batches):
        check_batch(batch, step, *setup)
    summary = summarize(batches)
    assert set(summary["mono_languages"]) == set(ts.languages)  # every language has ≥ 500 items
    assert "en" in summary["cross_pairs"] and "zh" in summary["cross_pairs"]["en"]
    # only English (1148 items) can fill a mono batch of 600
    big = BatchSampler([ts], "mono", 600, 42)
    assert {b.pairs[0].query_lang for b in big.batches(0, 20)} == {"en"}


def test_summarize_and_batch_to_json():
    ts = make_set("s", [["de", "en"], ["en", "fr"], ["en"]])
    other = make_set("t", [["en"]])
    batches = [
        Batch(0, "mono", "s", (Pair(2, "en", "en"), Pair(0, "en", "en"))),
        Batch(1, "cross", "s", (Pair(0, "de", "en"), Pair(1, "fr", "en"))),
        Batch(2, "mono", "t", (Pair(0, "en", "en"),)),
        Batch(3, "cross", "s", (Pair(1, "fr", "en"), Pair(0, "en", "de"))),
    ]
    assert summarize(batches) == {
        "batches": 4,
        "type_fractions": {"mono": 0.5, "cross": 0.5},
        "datasets": {"s": 3, "t": 1},
        "mono_languages": {"en": 2},
        "cross_pairs": {"de": {"en": 1}, "en": {"de": 1}, "fr": {"en": 2}},
    }
    assert batch_to_json(batches[1], [other, ts]) == {
        "step": 1,
        "type": "cross",
        "dataset": "s",
        "pairs": [
            {"item": "s/0", "query_lang": "de", "passage_lang": "en"},
            {"item": "s/1", "query_lang": "fr", "passage_lang": "en"},
        ],
    }


def test_languages_restrict_training():
    sampler = BatchSampler([PARALLEL], "cross", 8, 4, languages=["de", "fr"])
    langs = {lang for b in sampler.batches(0, 100) for p in b.pairs for lang in (p.query_lang, p.passage_lang)}
    assert langs == {"de", "fr"}


# ---------------------------------------------------------------- every bad input


MONO_ONLY = make_set("mono-only", [["en"]] * 10)
UNPAIRED = make_set("unpaired", [["en"]] * 10 + [["de"]] * 10)
SMALL = make_set("small", [["de", "en"]] * 3 + [["en"]] * 2 + [["fr"]])


@pytest.mark.parametrize(
    "datasets,strategy,batch_size,alpha,message",
    [
        ([PARALLEL], "mixed", 4, 0.5, "unknown sampler 'mixed'; available: mono, cross, hybrid"),
        ([PARALLEL], "hybrid", 0, 0.5, "batch size must be a positive integer"),
        ([PARALLEL], "hybrid", 4, 1.5, r"alpha .* within \[0, 1\] \(got 1.5\)"),
        ([PARALLEL], "hybrid", 4, -0.1, r"within \[0, 1\]"),
        ([PARALLEL], "hybrid", 4, float("nan"), r"within \[0, 1\]"),
        ([], "mono", 4, 0.5, "no training data"),
        ([TrainingSet("empty", ())], "mono", 4, 0.5, "training set 'empty' has no items"),
        ([PARALLEL, PARALLEL], "mono", 4, 0.5, "'par' given twice"),
        ([MONO_ONLY], "cross", 2, 0.5, "'mono-only' has the single language en; use --sampler mono"),
        ([MONO_ONLY], "hybrid", 2, 0.5, "single language en"),
        ([UNPAIRED], "cross", 2, 0.5, "no item of training set 'unpaired' exists in two languages"),
        (
            [SMALL],
            "mono",
            6,
            0.5,
            r"batch size 6 exceeds every mono language pool of training set 'small' "
            r"\(de 3, en 5, fr 1 items\)",
        ),
        ([SMALL], "cross", 4, 0.5, "batch size 4 exceeds the cross pool of training set 'small': only 3 items"),
        ([PARALLEL, SMALL], "hybrid", 4, 0.5, "cross pool of training set 'small'"),
    ],
)
def test_validate_sampler_messages(datasets, strategy, batch_size, alpha, message):
    with pytest.raises(HybtuiError, match=message):
        validate_sampler(datasets, strategy, batch_size, alpha)
    with pytest.raises(HybtuiError, match=message):
        BatchSampler(datasets, strategy, batch_size, 0, alpha)


def test_hybrid_draws_only_what_alpha_allows():
    # The sampler itself draws what α allows: α = 1 is pure mono (one language is enough),
    # α = 0 is pure cross (small mono pools are fine) ...
    assert {b.type for b in BatchSampler([MONO_ONLY], "hybrid", 4, 0, 1.0).batches(0, 20)} == {"mono"}
    pairs_only = make_set("pairs", [["de", "en"]] * 2 + [["fr", "sw"]] * 2)  # cross pool 4, mono pools 2
    validate_sampler([pairs_only], "hybrid", 3, 0.0)
    with pytest.raises(HybtuiError, match=r"exceeds every mono language pool .* \(de 2, en 2, fr 2, sw 2 items\)"):
        validate_sampler([pairs_only], "hybrid", 3, 0.5)
    # ... but a run is rejected up front when "hybrid" names a single language, whatever α.
    with pytest.raises(HybtuiError, match="'mono-only' has the single language en; use --sampler mono"):
        validate_sampler([MONO_ONLY], "hybrid", 4, 1.0)


def test_every_selected_language_must_fill_a_mono_batch():
    uneven = make_set("uneven", [["de", "en"]] * 3 + [["en"]] * 3)  # en 6 items, de 3
    assert {b.pairs[0].query_lang for b in BatchSampler([uneven], "mono", 4, 0).batches(0, 30)} == {"en"}
    with pytest.raises(
        HybtuiError, match=r"batch size 4 is larger than the mono pool of de 3 items in training set 'uneven'"
    ):
        validate_sampler([uneven], "mono", 4)
    validate_sampler([uneven], "mono", 3)


def test_bad_languages_seed_and_step():
    with pytest.raises(HybtuiError, match=r"language\(s\) xx not in the training data; available: de, en, fr, sw"):
        BatchSampler([PARALLEL], "mono", 4, 0, languages=["en", "xx"])
    with pytest.raises(HybtuiError, match="no training language selected; available: de, en, fr, sw"):
        BatchSampler([PARALLEL], "mono", 4, 0, languages=[])
    with pytest.raises(HybtuiError, match="'mono-only' has no items in the selected languages"):
        BatchSampler([PARALLEL, MONO_ONLY], "mono", 4, 0, languages=["de"])
    with pytest.raises(HybtuiError, match="seed must be a non-negative integer"):
        BatchSampler([PARALLEL], "mono", 4, -1)
    with pytest.raises(HybtuiError, match="step must be non-negative"):
        BatchSampler([PARALLEL], "mono", 4, 0).batch(-1)


def test_random_access_far_ahead_matches_iteration():
    """Crosses several decision blocks and many passes of short pools."""
    sets = [make_set("a", [["de", "en"]] * 13 + [["en"]] * 4), make_set("b", [["fr", "sw", "en"]] * 9)]
    sequential = list(BatchSampler(sets, "hybrid", 7, 8, 0.4).batches(0, 5000))
    fresh = BatchSampler(sets, "hybrid", 7, 8, 0.4)
    steps = random.Random(0).sample(range(5000), 200)
    assert [fresh.batch(s) for s in steps] == [sequential[s] for s in steps]
