"""The X×Y cross-lingual matrix of one run, or the difference between two runs, with a key
(``m``) that switches the metric among those the rows carry (mAP, R@1, nDCG@10, MRR).

Colours span the values shown (reporting/heat.py), cells have three decimals and eleven
languages fit in 80 columns; a wider matrix scrolls sideways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.widgets import Static

from hybtui import inert
from hybtui.reporting.compare import difference_heatmap
from hybtui.reporting.heat import METRIC_NAMES, cross_matrix, heat_table

#: The metrics a matrix can show, in the order ``m`` steps through them.
METRICS = tuple(METRIC_NAMES)

Rows = Sequence[Mapping]


class Heatmap(ScrollableContainer, can_focus=True):
    """``show(results, bench)`` for one run's matrix, ``show_difference(base, other, names)``
    for two runs'; ``bench`` None shows every benchmark with cross-lingual rows."""

    DEFAULT_CSS = """
    Heatmap { height: 1fr; }
    Heatmap > Static { width: auto; }
    """
    BINDINGS = [Binding("m", "next_metric", "Metric")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = "map"
        self._runs: tuple[Rows, ...] = ()
        self._names: tuple[str, str] = ("", "")
        self._bench: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("no cross-lingual results yet", style="dim"))

    def show(self, results: Rows, bench: str | None = None) -> None:
        """One run's stored result rows (any columns beyond the result's are ignored)."""
        self._runs, self._bench = (results,), bench
        self._draw()

    def show_difference(self, base: Rows, other: Rows, names: tuple[str, str], bench: str | None = None) -> None:
        """``other`` minus ``base`` over the languages both have; ``names`` are (base, other)."""
        self._runs, self._names, self._bench = (base, other), names, bench
        self._draw()

    @property
    def benches(self) -> list[str]:
        """The benchmarks shown: the one asked for, or those every shown run has cross rows of."""
        if self._bench is not None:
            return [self._bench]
        have = [{r["bench"] for r in rows if r["setting"] == "cross"} for rows in self._runs]
        return sorted(set.intersection(*have)) if have else []

    @property
    def metrics(self) -> list[str]:
        """The metrics every shown run's mono and cross rows carry."""
        benches = set(self.benches)
        have = [{r["metric"] for r in rows if r["bench"] in benches} for rows in self._runs]
        common = set.intersection(*have) if have else set()
        return [m for m in METRICS if m in common]

    def action_next_metric(self) -> None:
        metrics = self.metrics
        if metrics:
            self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics)] if self.metric in metrics else "map"
            self._draw()

    def _draw(self) -> None:
        metrics = self.metrics
        if metrics and self.metric not in metrics:
            self.metric = metrics[0]
        parts: list = [self._matrix(bench) for bench in self.benches]
        if not parts:
            pair = f" of both {self._names[0]} and {self._names[1]}" if len(self._runs) == 2 else ""
            parts = [inert.text(f"no cross-lingual results{pair} yet", style="dim")]
        elif len(metrics) > 1:
            choices = Text("m: metric ", style="dim")
            for m in metrics:
                choices.append(f" {METRIC_NAMES[m]} ", style="reverse" if m == self.metric else "dim")
            parts.append(choices)
        self.query_one(Static).update(Group(*parts))

    def _matrix(self, bench: str) -> Group:
        if len(self._runs) == 2:
            return difference_heatmap(*self._runs, bench, self.metric, self._names)
        langs, values = cross_matrix(self._runs[0], bench, self.metric)
        return heat_table(f"{bench} {METRIC_NAMES[self.metric]}: query ↓, candidate →", langs, values)
