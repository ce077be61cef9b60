"""What runs evaluated in common, so a comparison never sets a figure over some languages
against one over others: the benchmarks every run has, the query languages each of them
shares, the differences in words, and each run's rows cut down to that common ground with
their macro-averages recomputed over it.

Also which of a run's evaluations a comparison reads: the final one, or while the run
trains, its latest periodic one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hybtui.results import AVERAGE, POOL_ALL, ResultRow, macro_averages


@dataclass(frozen=True)
class Scope:
    """The common ground of some runs' evaluations (runs with none left out)."""

    #: benchmarks every evaluated run has, sorted
    benches: tuple[str, ...]
    #: bench → the query languages every evaluated run has on it
    langs: dict[str, frozenset[str]] = field(default_factory=dict)
    #: each difference in words: ``xquad-r: de,en,zh vs en,th,zh``, ``mlqa-r: only A, B``
    notes: tuple[str, ...] = ()

    def warning(self) -> str | None:
        """One line that says what differs and what the figures are computed over."""
        if not self.notes:
            return None
        shared = "; ".join(f"{b}: {','.join(sorted(self.langs[b]))}" for b in self.benches) or "nothing"
        return (
            f"evaluations differ — {'; '.join(self.notes)}. Figures and Δ are over what every run shares"
            f" only ({shared}; macro-averages recomputed, multi within each run's own pool)."
        )


def languages(rows: Sequence[Mapping], bench: str) -> frozenset[str]:
    """The query languages a run was evaluated on for ``bench``."""
    return frozenset(r["query_lang"] for r in rows if r["bench"] == bench and r["query_lang"] != AVERAGE)


def shared_scope(results: Sequence[Sequence[Mapping]], labels: Sequence[str]) -> Scope:
    """The benchmarks and languages common to every run with results (labels name the runs
    in the notes)."""
    evaluated = [(label, rows) for label, rows in zip(labels, results) if rows]
    if not evaluated:
        return Scope(())
    per_run = [{r["bench"] for r in rows} for _, rows in evaluated]
    benches = sorted(set.intersection(*per_run))
    notes = [
        f"{bench}: only {', '.join(label for (label, _), have in zip(evaluated, per_run) if bench in have)}"
        for bench in sorted(set.union(*per_run) - set(benches))
    ]
    langs = {}
    for bench in benches:
        sets = [languages(rows, bench) for _, rows in evaluated]
        langs[bench] = frozenset.intersection(*sets)
        distinct = list(dict.fromkeys(sets))
        if len(distinct) > 1:
            notes.append(f"{bench}: " + " vs ".join(",".join(sorted(s)) for s in distinct))
    return Scope(tuple(benches), langs, tuple(notes))


def restrict(rows: Sequence[Mapping], scope: Scope) -> list[Mapping]:
    """A run's rows within ``scope``: nothing else where the runs agree; otherwise only the
    shared benchmarks and languages, with the macro-averages recomputed over those."""
    if not scope.notes:
        return list(rows)
    out: list[Mapping] = []
    for bench in scope.benches:
        shared = scope.langs[bench]
        if languages(rows, bench) == shared:
            out += [r for r in rows if r["bench"] == bench]
            continue
        kept = [
            r
            for r in rows
            if r["bench"] == bench
            and r["query_lang"] in shared
            and (r["doc_lang"] in shared or r["doc_lang"] == POOL_ALL)
        ]
        scored = [ResultRow.from_dict(r) for r in kept if r["value"] is not None]
        by_seen = all(r.seen is not None for r in scored)
        out += kept + [a.as_dict() for a in macro_averages(scored, by_seen)]
    return out


def evaluated(rows: Sequence[Mapping]) -> tuple[list[Mapping], str]:
    """The evaluation a comparison reads, and which it is (``final``, ``step 20``, ``none``):
    the final one, else (a run still training) its latest periodic one."""
    final = [r for r in rows if r.get("final")]
    if final or not rows:
        return final, "final" if final else "none"
    step = max(r["step"] or 0 for r in rows)
    return [r for r in rows if (r["step"] or 0) == step], f"step {step}"
