"""The training loss as a line plot that grows as the worker reports steps."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from hybtui.tui.snapshot import downsample

#: Columns plotext spends on the y-axis labels and frame, which hold no points.
AXIS_WIDTH = 10


class LossPlot(PlotextPlot):
    """Keeps every (step, loss) point and draws them averaged down to the plot's width,
    so a long run costs a redraw of at most one point per column."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.points: list[tuple[int, float]] = []

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def extend(self, points: tuple[tuple[int, float], ...]) -> None:
        """Add newly read points (oldest first) and redraw."""
        if points:
            self.points.extend(points)
            self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss" if self.points else "loss (no steps reported yet)")
        plt.xlabel("step")
        xs, ys = downsample(self.points, self.size.width - AXIS_WIDTH)
        if xs:
            plt.plot(xs, ys, marker="braille")
        self.refresh()
