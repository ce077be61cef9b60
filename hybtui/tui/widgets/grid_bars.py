"""A grid's multi mAP per query language as grouped bars, one bar per sampler: where hybrid
gains or loses, on languages seen in training and unseen ones."""

from __future__ import annotations

from typing import Any

from textual.color import Color
from textual_plotext import PlotextPlot

from hybtui.inert import visible
from hybtui.reporting.grid_report import language_label

#: Rows of the plot that hold no bars: title, frame and the language labels.
FRAME_ROWS = 4
#: Theme variables the samplers' bars are coloured with, so they stand out on light and dark themes alike.
BAR_COLOURS = ("primary", "accent", "success", "error", "secondary", "foreground")


class GridBars(PlotextPlot):
    """Redrawn only when the per-language figures of its benchmark change."""

    def __init__(self, bench: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bench = bench
        self.languages: dict[str, Any] = {}

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def show(self, languages: dict[str, Any]) -> None:
        """``languages`` as in build_report: {lang: {seen, resource, samplers: {label: figures}}}."""
        if languages != self.languages:
            self.languages = languages
            self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(visible(f"{self.bench}: multi mAP per query language († unseen, ‡ low-resource)"))
        samplers = list(
            dict.fromkeys(
                label
                for info in self.languages.values()
                for label, figures in info["samplers"].items()
                if figures["multi mAP"] is not None
            )
        )
        if samplers:
            bars = [
                [info["samplers"][label]["multi mAP"] or 0.0 for info in self.languages.values()] for label in samplers
            ]
            colours = [
                Color.parse(self.app.theme_variables[BAR_COLOURS[i % len(BAR_COLOURS)]]).rgb
                for i in range(len(samplers))
            ]
            plt.multiple_bar(
                [visible(language_label(lang, info)) for lang, info in self.languages.items()],
                bars,
                labels=[visible(label) for label in samplers],
                color=colours,
            )
            # plotext draws the legend inside the plot, top left: keep that many rows above the bars
            rows = self.size.height - FRAME_ROWS
            top = max(max(row) for row in bars)
            if top > 0 and rows > len(samplers) + 2:
                plt.ylim(0, top * rows / (rows - len(samplers) - 1))
        self.refresh()
