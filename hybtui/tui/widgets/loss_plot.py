"""Loss curves as line plots: one run's curve (with its learning rate on the right axis)
growing as its worker reports steps, or several runs' curves overlaid for comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from textual_plotext import PlotextPlot

from hybtui.tui.viewmodels import downsample

#: Columns plotext spends on the y-axis labels and frame, which hold no points.
AXIS_WIDTH = 10


@dataclass
class Series:
    """One curve's points in growing numpy arrays (appends are amortised O(1))."""

    side: str = "left"
    _steps: np.ndarray = field(default_factory=lambda: np.empty(1024))
    _values: np.ndarray = field(default_factory=lambda: np.empty(1024))
    size: int = 0

    def extend(self, steps: list[float], values: list[float]) -> None:
        end = self.size + len(steps)
        if end > len(self._steps):
            capacity = max(end, 2 * len(self._steps))
            self._steps = np.resize(self._steps, capacity)
            self._values = np.resize(self._values, capacity)
        self._steps[self.size : end] = steps
        self._values[self.size : end] = values
        self.size = end

    def __len__(self) -> int:
        return self.size

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self.size]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self.size]


def _readable(values: np.ndarray, label: str) -> tuple[np.ndarray, str]:
    """Tiny values (learning rates) scaled by a power of ten named in the label, so the
    axis reads ``3.0`` rather than ``0.0000300``."""
    peak = float(np.abs(values).max())
    exponent = math.floor(math.log10(peak)) if peak > 0 else 0
    if exponent >= -2:
        return values, label
    return values * 10.0**-exponent, f"{label} ×1e{exponent}"


class LossPlot(PlotextPlot):
    """Keeps every point of each labelled series and draws them averaged down to the plot's
    width, so a refresh of a run with 100,000 steps costs one vectorised pass and a redraw
    of at most one point per column."""

    X_LABEL = "step"
    TITLE = "loss"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.series: dict[str, Series] = {}
        #: The title while there is nothing to draw (a zero-shot run never has steps).
        self.empty_title = f"{self.TITLE} (no steps reported yet)"

    @property
    def points(self) -> list[tuple[float, float]]:
        """The loss points of the single run of the detail screen."""
        series = self.series.get("")
        return list(zip(series.steps.tolist(), series.values.tolist())) if series else []

    def on_mount(self) -> None:
        self.draw()

    def on_resize(self) -> None:
        self.draw()

    def extend(self, points: tuple[tuple[float, float], ...], label: str = "", side: str = "left") -> None:
        """Add newly read (step, value) points (oldest first) to the series ``label``;
        ``side="right"`` plots it against the right axis (the learning rate). Call
        ``draw`` once the refresh's points are all in."""
        if points:
            steps, values = zip(*points)
            self.series.setdefault(label, Series(side)).extend(steps, values)

    def heading(self) -> str:
        """The plot's title: what it shows, and which series read against the right axis."""
        right = [label for label, s in self.series.items() if s.side == "right"]
        title = self.TITLE if any(s.size for s in self.series.values()) else self.empty_title
        return title + (f" · {', '.join(right)} (right axis)" if right else "")

    def draw(self) -> None:
        """Draw every series as it is now (once per refresh, however many series changed)."""
        plt = self.plt
        plt.clear_data()
        plt.title(self.heading())
        plt.xlabel(self.X_LABEL)
        for label, series in self.series.items():
            xs, ys = downsample(series.steps, series.values, self.size.width - AXIS_WIDTH)
            if len(xs):
                ys, label = _readable(ys, label)
                plt.plot(xs.tolist(), ys.tolist(), marker="braille", label=label or None, yside=series.side)
        self.refresh()
