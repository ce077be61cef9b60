"""Runs side by side, live: their loss curves overlaid in the colours of a legend above the
plot, then the comparison tables (parameters that differ, headline figures and mAP per
language with deltas against a baseline the user chooses) and the X×Y difference between
the baseline and a selected run. Where the runs were evaluated on different benchmarks or
languages a warning says so and every figure is over what they share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, ConsoleOptions, Group, RenderResult
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


class Legend:
    """Entries packed into lines as wide as the screen, none broken across two (a label
    split over lines reads as two runs)."""

    GAP = "   "

    def __init__(self, entries: list[Text]) -> None:
        self.entries = entries

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line = Text()
        for entry in self.entries:
            if line.cell_len and line.cell_len + len(self.GAP) + entry.cell_len > options.max_width:
                yield line
                line = Text()
            line.append(self.GAP if line.cell_len else "").append_text(entry)
        yield line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = [entry.cell_len for entry in self.entries]
        return Measurement(max(widths, default=0), sum(widths) + len(self.GAP) * len(widths))


class CurvesPlot(LossPlot):
    """The runs' loss curves, each in its run's colour (``colours``, by series label); the
    legend is the line above the plot, never drawn over the curves."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.colours: dict[str, tuple[int, int, int]] = {}

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        empty = not any(s.size for s in self.series.values())
        plt.title(self.heading() if empty else "")  # the axis label says it: one more row for the curves
        plt.xlabel(self.X_LABEL)
        plt.ylabel("loss")
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
        #: what the legend, the tables and the difference heatmap were last drawn from
        self._shown: tuple = ()
        self._tables_shown: tuple = ()
        self._heatmap_shown: tuple = ()

    @property
    def heading(self) -> str:
        against = f" · Δ against {inert.visible(self.labels[self.baseline])}" if self.labels else ""
        return f"compare {len(self.run_ids)} runs{against}"

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
        are now; each redrawn only when what it shows changed (a live run's step moves the
        legend, not the tables)."""
        if not self.runs:
            return
        evaluations = tuple((label, len(rows)) for rows, label in self.results.values())
        tables = (self.baseline, evaluations)
        legend = (*tables, self.selected, tuple((run.status, run.step) for run in self.runs))
        if legend == self._shown:
            return
        self._shown = legend
        self.query_one("#compare-legend", Static).update(self._legend())
        results = {run_id: rows for run_id, (rows, _) in self.results.items()}
        if tables != self._tables_shown:
            self._tables_shown = tables
            self._show_tables(comparison(list(self.runs), results, self.baseline, self.labels))
        if legend[:3] != self._heatmap_shown:
            self._heatmap_shown = legend[:3]
            self._show_difference(results)
        self.sub_title = self.heading

    def _show_difference(self, results: dict[str, list[dict]]) -> None:
        """The baseline against the selected run, on their headline benchmark."""
        base, other = self.run_ids[self.baseline], self.run_ids[self.selected]
        benches = {r["bench"] for r in results[base]} & {r["bench"] for r in results[other]}
        self.query_one(Heatmap).show_difference(
            results[base],
            results[other],
            (self.labels[self.baseline], self.labels[self.selected]),
            headline_bench(benches) if benches else None,
        )

    def _show_tables(self, parts: list) -> None:
        """The tables in place where there are as many as before (the scroll position stays),
        else anew."""
        tables = self.query_one("#compare-tables", ScrollableContainer)
        shown = list(tables.query_children(Static))
        if len(shown) != len(parts):
            tables.remove_children()
            shown = [Static() for _ in parts]
            tables.mount_all(shown)
        for static, part in zip(shown, parts):
            static.update(part)
            static.styles.width = self._natural_width(part)

    def _natural_width(self, part: Group | Text) -> int | str:
        """A table's natural width (the container scrolls sideways: twelve runs do not fit 80
        columns); a line of text wraps to the screen."""
        if isinstance(part, Text):
            return "1fr"
        options = self.app.console.options.update(max_width=NATURAL_MAX_WIDTH)
        return Measurement.get(self.app.console, options, part).maximum

    def _legend(self) -> Legend:
        """Each run's colour and label, the baseline and the selected run marked, and the
        status of a run not finished (and the evaluation its figures are from, until the final one)."""
        entries = []
        for i, run in enumerate(self.runs):
            rgb = COLOURS[i % len(COLOURS)]
            entry = Text("━━ ", style=f"bold rgb({rgb[0]},{rgb[1]},{rgb[2]})")
            entry.append_text(inert.text(self.labels[i], style="bold" if i == self.baseline else ""))
            if i == self.baseline:
                entry.append(" ").append("baseline", style="reverse")
            elif i == self.selected:
                entry.append(" ").append("selected", style="underline")
            if run.status != "finished":
                entry.append(" ").append_text(status_text(run))
            evaluation = self.results[run.id][1]
            if evaluation.startswith("step"):
                entry.append(f" (figures at {evaluation})", style="dim")
            entries.append(entry)
        return Legend(entries)
