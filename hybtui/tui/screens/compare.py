"""Runs side by side, live: their loss curves overlaid in the colours of a legend above the
plot, then the comparison tables (parameters that differ, headline figures and mAP per
language with deltas against a baseline the user chooses) and the X×Y difference between
the baseline and a selected run. Where the runs were evaluated on different benchmarks or
languages a warning says so and every figure is over what they share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.measure import Measurement
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from hybtui import inert
from hybtui.reporting.compare import comparison, short_labels
from hybtui.reporting.scope import evaluated
from hybtui.runs.records import TERMINAL_STATUSES, Run
from hybtui.runs.store import Store
from hybtui.tui.screens.polled import PolledScreen
from hybtui.tui.viewmodels import LOSS_KEY, downsample, headline_bench, status_text
from hybtui.tui.widgets.heatmap import Heatmap
from hybtui.tui.widgets.loss_plot import AXIS_WIDTH, LossPlot

#: One colour per run (Tableau's 10, then two lighter ones): curves and legend agree.
COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
)

#: The widest a comparison table is drawn (its natural width, scrolled sideways).
NATURAL_MAX_WIDTH = 1000


class CurvesPlot(LossPlot):
    """The runs' loss curves, each in its run's colour (``colours``, by series label); the
    legend is the line above the plot, never drawn over the curves."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.colours: dict[str, tuple[int, int, int]] = {}

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.heading())
        plt.xlabel(self.X_LABEL)
        for label, series in self.series.items():
            xs, ys = downsample(series.steps, series.values, self.size.width - AXIS_WIDTH)
            if len(xs):
                plt.plot(xs.tolist(), ys.tolist(), marker="braille", color=self.colours.get(label, "white"))
        self.refresh()


@dataclass(frozen=True)
class CompareRead:
    """One read: the runs as they are now, their loss points after the last ids read, and
    the evaluation each comparison reads (for runs whose final results are not in yet)."""

    runs: tuple[Run, ...]
    points: dict[str, list[tuple[int, float]]]
    last_ids: dict[str, int]
    results: dict[str, tuple[list[dict], str]]


class CompareScreen(PolledScreen):
    """Reads only what is new (loss points after the last id; results until a run has ended
    and its final ones are in), so the curves and tables follow running runs."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("b", "next_baseline", "Baseline"),
        Binding("s", "next_selected", "Select run"),
        Binding("1", "show_tab('figures')", "Figures"),
        Binding("2", "show_tab('difference')", "Difference X×Y"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, store_path: Path, run_ids: list[str], refresh_s: float = 0.5) -> None:
        super().__init__(store_path, refresh_s)
        self.run_ids = run_ids
        self.baseline = 0
        self.selected = 1
        self.runs: tuple[Run, ...] = ()
        self.labels: list[str] = []
        self.results: dict[str, tuple[list[dict], str]] = {}
        self._last_ids: dict[str, int] = {}
        self._final: set[str] = set()
        self._shown: object = None

    @property
    def heading(self) -> str:
        return f"compare {len(self.run_ids)} runs"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading runs…", id="compare-legend")
        yield CurvesPlot(id="compare-loss")
        with TabbedContent(id="compare-tabs", initial="figures-tab"):
            with TabPane("figures", id="figures-tab"):
                yield ScrollableContainer(Static("reading runs…"), id="compare-tables")
            with TabPane("difference X×Y", id="difference-tab"):
                yield Heatmap(id="compare-heatmap")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-tables").focus()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = f"{tab}-tab"
        self.query_one("#compare-tables" if tab == "figures" else "#compare-heatmap").focus()

    def action_next_baseline(self) -> None:
        """The next run becomes the baseline (deltas against it); the selected run moves on
        if it was that one."""
        self.baseline = (self.baseline + 1) % len(self.run_ids)
        if self.selected == self.baseline:
            self.selected = (self.selected + 1) % len(self.run_ids)
        self._redraw()

    def action_next_selected(self) -> None:
        """The next run (never the baseline) is the one the difference heatmap sets against it."""
        self.selected = (self.selected + 1) % len(self.run_ids)
        if self.selected == self.baseline:
            self.selected = (self.selected + 1) % len(self.run_ids)
        self._redraw()

    def read(self, store: Store) -> CompareRead:
        runs = tuple(store.get_run(run_id) for run_id in self.run_ids)
        points, last_ids = {}, {}
        for run in runs:
            rows = store.metrics_since(run.id, self._last_ids.get(run.id, 0), keys=[LOSS_KEY])
            points[run.id] = [(m["step"], m["value"]) for m in rows if not math.isnan(m["value"])]
            last_ids[run.id] = rows[-1]["id"] if rows else self._last_ids.get(run.id, 0)
        results = {
            run.id: evaluated(store.results(run.id, final_only=False)) for run in runs if run.id not in self._final
        }
        return CompareRead(runs, points, last_ids, results)

    def show(self, data: CompareRead) -> None:
        if not self.runs:
            self.labels = short_labels(data.runs)
        self.runs = data.runs
        self._last_ids.update(data.last_ids)
        self.results.update(data.results)
        self._final |= {
            run.id for run in data.runs if run.status in TERMINAL_STATUSES and self.results[run.id][1] == "final"
        }
        plot = self.query_one(CurvesPlot)
        plot.colours = {run_id: COLOURS[i % len(COLOURS)] for i, run_id in enumerate(self.run_ids)}
        for run_id, points in data.points.items():
            plot.extend(tuple(points), label=run_id)
        if any(data.points.values()) or not plot.series:
            plot.draw()
        self._redraw()

    def _redraw(self) -> None:
        """Legend, tables and difference heatmap as the runs, results, baseline and selection
        are now (skipped when none of them changed since the last time)."""
        if not self.runs:
            return
        state = (
            self.baseline,
            self.selected,
            tuple((run.status, run.step) for run in self.runs),
            tuple(label for _, label in self.results.values()),
        )
        if state == self._shown:
            return
        self._shown = state
        self.query_one("#compare-legend", Static).update(self._legend())
        results = {run_id: rows for run_id, (rows, _) in self.results.items()}
        tables = self.query_one("#compare-tables", ScrollableContainer)
        tables.remove_children()
        parts = comparison(list(self.runs), results, self.baseline, self.labels)
        tables.mount_all(self._natural(part) for part in parts)
        base, other = self.run_ids[self.baseline], self.run_ids[self.selected]
        benches = {r["bench"] for r in results[base]} & {r["bench"] for r in results[other]}
        self.query_one(Heatmap).show_difference(
            results[base],
            results[other],
            (self.labels[self.baseline], self.labels[self.selected]),
            headline_bench(benches) if benches else None,
        )
        self.sub_title = f"{self.heading} · Δ against {inert.visible(self.labels[self.baseline])}"

    def _natural(self, part: Group | Text) -> Static:
        """A table at its natural width (the container scrolls sideways: twelve runs do not fit
        80 columns); a line of text wraps to the screen."""
        static = Static(part)
        if not isinstance(part, Text):
            options = self.app.console.options.update(max_width=NATURAL_MAX_WIDTH)
            static.styles.width = Measurement.get(self.app.console, options, part).maximum
        return static

    def _legend(self) -> Text:
        """Each run's colour and label, the baseline and the selected run marked, and the
        status of a run not finished (with the evaluation its figures are from)."""
        legend = Text()
        for i, run in enumerate(self.runs):
            rgb = COLOURS[i % len(COLOURS)]
            legend.append("━━ ", style=f"bold rgb({rgb[0]},{rgb[1]},{rgb[2]})")
            legend.append_text(inert.text(self.labels[i], style="bold" if i == self.baseline else ""))
            if i == self.baseline:
                legend.append(" baseline", style="reverse")
            elif i == self.selected:
                legend.append(" selected", style="underline")
            if run.status != "finished":
                legend.append(" ").append_text(status_text(run))
                legend.append(f" ({self.results[run.id][1]})", style="dim")
            legend.append("   ")
        return legend
