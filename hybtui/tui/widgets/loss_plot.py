"""Loss curves as line plots: one run's curve growing as its worker reports steps, or
several runs' curves overlaid for comparison."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from hybtui.tui.snapshot import downsample

#: Columns plotext spends on the y-axis labels and frame, which hold no points.
AXIS_WIDTH = 10


class LossPlot(PlotextPlot):
    """Keeps every (step, loss) point of each labelled series and draws them averaged down
    to the plot's width, so a long run costs a redraw of at most one point per column."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.series: dict[str, list[tuple[int, float]]] = {}

    @property
    def points(self) -> list[tuple[int, float]]:
        """The unlabelled series: the single run of the detail screen."""
        return self.series.get("", [])

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def extend(self, points: tuple[tuple[int, float], ...], label: str = "") -> None:
        """Add newly read points (oldest first) to the series ``label`` and redraw."""
        if points:
            self.series.setdefault(label, []).extend(points)
            self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss" if any(self.series.values()) else "loss (no steps reported yet)")
        plt.xlabel("step")
        for label, points in self.series.items():
            xs, ys = downsample(points, self.size.width - AXIS_WIDTH)
            if xs:
                plt.plot(xs, ys, marker="braille", label=label or None)
        self.refresh()
