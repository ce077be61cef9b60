"""A run's evaluations over its steps: macro (or one query language's) mono, cross and multi
mAP against the left axis, the multilingual rank distance (language bias) against the right,
the final evaluation as each curve's last point."""

from __future__ import annotations

from hybtui.results import AVERAGE
from hybtui.tui.widgets.loss_plot import LossPlot

#: The curve read against the right axis (its scale is ranks, not mAP).
RIGHT = "multi rank dist."


class EvalPlot(LossPlot):
    """Redrawn whole when the run's evaluations or the language shown change (rarely: once
    per evaluation), so it keeps no history of its own."""

    TITLE = "evaluations"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lang = AVERAGE
        self.empty_title = "evaluations (none yet: --eval-every N evaluates during training)"

    def heading(self) -> str:
        what = "macro-average" if self.lang == AVERAGE else f"query language {self.lang}"
        if not any(s.size for s in self.series.values()):
            return self.empty_title
        return f"mAP over steps, {what} · {RIGHT} (right axis)"

    def show_curves(self, curves: dict[str, list[tuple[int, float]]], lang: str) -> None:
        """Replace every curve by ``curves`` (label → (step, value) points) and draw."""
        self.lang = lang
        self.series = {}
        for label, points in curves.items():
            self.extend(tuple(points), label=label, side="right" if label == RIGHT else "left")
        self.draw()
