"""X×Y heat maps as tables for people: cell colours on a scale spanning the values shown
(close values get distinct colours), three decimals, and the scale as a legend.

Shared by a run's cross-lingual matrix (tables.cross_heatmap, the app's Heatmap widget) and
the difference between two runs (compare.difference_heatmap), so both read alike. Cells are
narrow (``.812``, ``-.012``): eleven languages fit in 80 columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text

from hybtui import inert
from hybtui.results import AVERAGE

#: What the cells of a matrix may show, and how the metric is spelled for a reader.
METRIC_NAMES = {"map": "mAP", "recall@1": "R@1", "ndcg@10": "nDCG@10", "mrr": "MRR"}
#: Viridis stops: dark to light, distinct in every step, readable by the colour-blind.
SEQUENTIAL = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
#: Red (worse) through near-white (no difference) to blue (better).
DIVERGING = ((178, 24, 43), (239, 138, 98), (247, 247, 247), (103, 169, 207), (33, 102, 172))
#: How many colour blocks the legend shows between its two ends.
LEGEND_STEPS = 10

Matrix = dict[tuple[str, str], float]


def compact(value: float | None, signed: bool = False) -> str:
    """Three decimals without the leading zero (``.812``, ``-.012``, ``+.030``, ``1.000``)."""
    if value is None or math.isnan(value):
        return "–"
    text = format(value, "+.3f" if signed else ".3f")
    return text.replace("0.", ".", 1) if abs(value) < 1 else text


def _blend(stops: tuple[tuple[int, int, int], ...], t: float) -> tuple[int, int, int]:
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    a, b = stops[i], stops[i + 1]
    return tuple(round(x + (y - x) * f) for x, y in zip(a, b))  # type: ignore[return-value]


def _style(rgb: tuple[int, int, int]) -> str:
    """The colour as a background, with black or white text, whichever reads on it."""
    light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140
    return f"{'black' if light else 'white'} on rgb({rgb[0]},{rgb[1]},{rgb[2]})"


@dataclass(frozen=True)
class Scale:
    """A colour scale over ``low..high``; a diverging one is symmetric around 0."""

    low: float
    high: float
    diverging: bool = False

    @classmethod
    def over(cls, values: Iterable[float], diverging: bool = False) -> Scale:
        finite = [v for v in values if v is not None and not math.isnan(v)]
        if diverging:
            bound = max((abs(v) for v in finite), default=0.0)
            return cls(-bound, bound, True)
        return cls(min(finite, default=0.0), max(finite, default=0.0))

    def colour(self, value: float) -> tuple[int, int, int]:
        span = self.high - self.low
        t = 0.5 if span <= 0 else (value - self.low) / span
        return _blend(DIVERGING if self.diverging else SEQUENTIAL, t)

    def cell(self, value: float | None, coloured: bool = True) -> Text:
        text = compact(value, signed=self.diverging)
        if value is None or math.isnan(value):
            return Text(text, style="dim")
        return Text(text, style=_style(self.colour(value)) if coloured else "bold")

    def legend(self) -> Text:
        """``scale .412 ██████████ .812``: the range the colours span, ends included."""
        text = Text("scale ")
        text.append(compact(self.low, self.diverging) + (" worse " if self.diverging else " "))
        for i in range(LEGEND_STEPS):
            rgb = self.colour(self.low + (self.high - self.low) * i / (LEGEND_STEPS - 1))
            text.append("█", style=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})")
        text.append((" better " if self.diverging else " ") + compact(self.high, self.diverging))
        return text


def cross_matrix(rows: Iterable[Mapping], bench: str, metric: str) -> tuple[list[str], Matrix]:
    """The bench's query languages and ``(query, candidate) → value``: mono on the diagonal,
    cross off it (stored dicts; a NULL value is left out)."""
    values: Matrix = {}
    langs: set[str] = set()
    for r in rows:
        if r["bench"] != bench or r["query_lang"] == AVERAGE or r["setting"] not in ("mono", "cross"):
            continue
        langs.add(r["query_lang"])
        if r["metric"] == metric and r["value"] is not None:
            values[(r["query_lang"], r["doc_lang"])] = r["value"]
    return sorted(langs), values


def heat_table(title: str, langs: list[str], values: Matrix, diverging: bool = False) -> Group:
    """The matrix with queries in rows. The colours span the cross pairs (their values are
    close together); the diagonal (mono, usually far higher) is bold and uncoloured."""
    off = [v for (q, d), v in values.items() if q != d]
    scale = Scale.over(off or values.values(), diverging)
    table = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, pad_edge=False)
    table.add_column("")
    for lang in langs:
        table.add_column(inert.text(lang), justify="right")
    for q in langs:
        table.add_row(inert.text(q), *(scale.cell(values.get((q, d)), coloured=q != d or not off) for d in langs))
    note = Text("  diagonal: mono, bold" if off else "", style="dim")
    return Group(inert.text(title, style="italic"), table, scale.legend().append_text(note))
