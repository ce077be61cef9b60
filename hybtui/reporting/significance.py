"""Is a difference between two runs real? Paired tests over questions, Holm-corrected.

The unit of pairing is the *question* (LAReQA's question id): its translations are not
independent queries (they share the question's difficulty), so each figure's per-query
differences are summed per question with weights that reproduce the figure exactly — a
macro-average over query languages (mono, multi) or language pairs (cross) — and the tests
run over those per-question values: ``mean(A) − mean(B)`` is the figure's difference.

- a paired randomization test: the signs of the per-question differences flipped at
  random (all 2^n sign vectors when n ≤ EXACT_MAX, else ROUNDS of them, seeded; p counts
  the observed statistic among the resamples, so it is never 0);
- the paired t-test (``scipy.stats.ttest_rel``) and its 95 % t-interval as the confidence
  interval: deterministic, consistent with the t-test (it excludes 0 exactly when p < .05),
  and with hundreds of questions per figure the mean difference is near normal — a
  bootstrap would add resampling noise and cost for the same interval;
- Holm's step-down correction over every comparison reported together.

Runs evaluated on different queries are compared on the ones both have, and said so; a
multi figure only against one over the same candidate pool. Torch-free: the app uses it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hybtui.errors import HybtuiError
from hybtui.evaluation.per_query import QueryTable
from hybtui.results import AVERAGE, HEADLINE
from hybtui.runs import query_files

CONFIDENCE = 0.95
#: Family-wise error rate a Holm-adjusted p-value is held to.
ALPHA = 0.05
#: Random sign vectors of the randomization test when there are too many to enumerate.
ROUNDS = 10_000
EXACT_MAX = 16
SEED = 0


@dataclass(frozen=True)
class Comparison:
    """One figure of two runs, paired over the questions both were evaluated on."""

    #: the run compared against the base run
    run: str
    bench: str
    setting: str
    metric: str
    #: a query language, or AVERAGE for the figure over all the shared ones
    query_lang: str
    n: int
    base: float
    other: float
    diff: float
    ci_low: float
    ci_high: float
    p_randomization: float
    p_t: float
    p_randomization_holm: float = math.nan
    p_t_holm: float = math.nan

    @property
    def significant(self) -> bool:
        """Whether the Holm-adjusted randomization p-value is below ALPHA."""
        return self.p_randomization_holm < ALPHA

    def as_dict(self) -> dict:
        """For JSON: a p-value or interval that could not be computed (one question) is null."""
        values = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}
        return {**values, "significant": self.significant}


@dataclass(frozen=True)
class Significance:
    comparisons: list[Comparison]
    #: what was compared on less than everything, in words
    notes: list[str]


def sign_flip_p(diffs: np.ndarray, rounds: int = ROUNDS, seed: int = SEED) -> float:
    """Two-sided p of the paired randomization test of ``sum(diffs)`` (exact for small n)."""
    d = np.asarray(diffs, dtype=np.float64)
    observed = abs(d.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(d).sum()))
    if len(d) <= EXACT_MAX:
        bits = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
        return float(np.mean(np.abs((1 - 2 * bits) @ d) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    extreme, chunk = 0, 1000
    for start in range(0, rounds, chunk):
        bits = rng.integers(0, 2, size=(min(chunk, rounds - start), len(d)), dtype=np.uint8)
        extreme += int(np.count_nonzero(np.abs(d.sum() - 2 * (bits @ d)) >= observed - tolerance))
    return (1 + extreme) / (1 + rounds)


def t_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Paired t-test p of ``a − b`` and its CONFIDENCE t-interval (nan with fewer than 2 pairs)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return math.nan, math.nan, math.nan
    if np.ptp(d) == 0:  # no spread: t is 0/0 or ±inf
        return (1.0 if d[0] == 0 else 0.0), float(d[0]), float(d[0])
    from scipy import stats  # here: scipy.stats takes 0.5 s to import, and the app starts without it

    result = stats.ttest_rel(a, b)
    interval = result.confidence_interval(CONFIDENCE)
    return float(result.pvalue), float(interval.low), float(interval.high)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (nan stays nan and does not count)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def per_question(base: QueryTable, other: QueryTable, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' scores per question over the rows both have: each row weighted by
    1 / (cells × its cell's rows), a cell being a (query language, candidate language), summed
    per question and scaled by the number of questions, so each array's mean is the figure."""
    keys = [_keys(t) for t in (base, other)]
    _, ia, ib = np.intersect1d(*keys, return_indices=True)
    a, b = base.columns[metric][ia], other.columns[metric][ib]
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b, ia = a[keep], b[keep], ia[keep]
    cols = base.columns
    _, cell = np.unique(
        np.char.add(np.char.add(cols["query_lang"][ia], "\t"), cols["doc_lang"][ia]), return_inverse=True
    )
    questions, question = np.unique(cols["query_id"][ia], return_inverse=True)
    weight = 1.0 / (cell.max(initial=-1) + 1) / np.bincount(cell)[cell]
    scale = len(questions)
    return tuple(scale * np.bincount(question, weight * x, len(questions)) for x in (a, b))  # type: ignore[return-value]


def _keys(table: QueryTable) -> np.ndarray:
    c = table.columns
    return np.char.add(np.char.add(np.char.add(np.char.add(c["query_lang"], "\t"), c["doc_lang"]), "\t"), c["query_id"])


def paired(run: str, figure: tuple[str, str, str, str], base: QueryTable, other: QueryTable) -> Comparison | None:
    """One figure, (bench, setting, metric, query language), compared: None where the runs
    share no question for it."""
    a, b = per_question(base, other, figure[2])
    if not len(a):
        return None
    p_t, low, high = t_test(b, a)
    diff = float(np.mean(b) - np.mean(a))
    return Comparison(run, *figure, len(a), float(np.mean(a)), float(np.mean(b)), diff, low, high,
                      sign_flip_p(b - a), p_t)  # fmt: skip


def against_first(tables: list[QueryTable], names: list[str]) -> Significance:
    """Every other run against the first, Holm-corrected over all the comparisons together."""
    found: list[Comparison] = []
    notes: list[str] = []
    for table, name in zip(tables[1:], names[1:]):
        more = _comparisons(tables[0], table, (names[0], name))
        found += more.comparisons
        notes += more.notes
    return Significance(with_holm(found), notes)


def _comparisons(base: QueryTable, other: QueryTable, names: tuple[str, str]) -> Significance:
    """``other`` against ``base`` (not yet corrected): every headline figure of each shared
    benchmark, over all the shared query languages and per query language."""
    found: list[Comparison | None] = []
    notes: list[str] = []
    for bench in sorted(map(str, set(base.columns["bench"]) & set(other.columns["bench"]))):
        a, b = base.where(bench=bench), other.where(bench=bench)
        notes += _coverage(bench, a, b, names)
        same_pool = base.pools.get(bench) == other.pools.get(bench)
        if not same_pool:
            notes.append(f"{bench}: the multilingual candidate pools differ; multi figures are not compared")
        langs = sorted(map(str, set(a.columns["query_lang"]) & set(b.columns["query_lang"])))
        for setting, metric in HEADLINE:
            if setting == "multi" and not same_pool:
                continue
            sa, sb = a.where(setting=setting), b.where(setting=setting)
            for lang in [AVERAGE, *langs]:
                pick = (lambda t: t) if lang == AVERAGE else (lambda t, lang=lang: t.where(query_lang=lang))
                if metric in sa.columns and metric in sb.columns:
                    found.append(paired(names[1], (bench, setting, metric, lang), pick(sa), pick(sb)))
    return Significance([c for c in found if c is not None], notes)


def _coverage(bench: str, a: QueryTable, b: QueryTable, names: tuple[str, str]) -> list[str]:
    """Where the runs were evaluated on different queries: a note of what is compared."""
    ka, kb = set(_keys(a.where(setting="mono"))), set(_keys(b.where(setting="mono")))
    if ka == kb:
        return []
    return [
        f"{bench}: evaluated on different queries ({names[0]}: {len(ka)}, {names[1]}: {len(kb)}); "
        f"compared on the {len(ka & kb)} queries both have only"
    ]


def with_holm(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons with both p-values Holm-adjusted over all of them."""
    rand = holm([c.p_randomization for c in comparisons])
    t = holm([c.p_t for c in comparisons])
    return [
        Comparison(**{**asdict(c), "p_randomization_holm": float(r), "p_t_holm": float(p)})
        for c, r, p in zip(comparisons, rand, t)
    ]


def run_table(run_dir: Path, run_id: str) -> QueryTable:
    """A run's final per-query scores, or a clear error saying how to get them."""
    table = query_files.read_final(run_dir)
    if table is None:
        raise MissingQueryScores(run_id, run_dir)
    return table


class MissingQueryScores(HybtuiError):
    """A run has no per-query results, so it cannot be tested against another."""

    def __init__(self, run_id: str, run_dir: Path):
        self.run_id = run_id
        super().__init__(
            f"run {run_id} has no per-query results ({Path(run_dir) / query_files.DIRECTORY / query_files.FINAL} "
            f"is missing: it was evaluated by a hybtui older than per-query results, or has not finished); "
            f"significance needs them — train it again with this hybtui: "
            f"`hybtui train --config {Path(run_dir) / 'config.json'}`"
        )


def for_runs(run_dirs: list[Path], names: list[str]) -> Significance:
    """Every run against the first from their folders (MissingQueryScores names one without)."""
    return against_first([run_table(Path(d), n) for d, n in zip(run_dirs, names)], names)


def significance(base_dir: Path, other_dir: Path) -> list[Comparison]:
    """The app's entry point: ``other`` against ``base`` from their run folders."""
    return for_runs([base_dir, other_dir], [Path(base_dir).name, Path(other_dir).name]).comparisons
