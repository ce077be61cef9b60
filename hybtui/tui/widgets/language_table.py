"""Final mAP per query language and setting as bars, with the languages seen in training
marked and the language bias (rank distance) beside them."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from hybtui import inert
from hybtui.tui.run_page import LanguageFigures, language_rows

#: Cells of a bar: eighths of a block give 8 levels per cell.
BAR_CELLS = 6
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float | None) -> Text:
    """``0.812 █████▎``: the figure, then a bar of BAR_CELLS cells for the range [0, 1]."""
    if value is None:
        return Text("–", style="dim")
    eighths = round(min(max(value, 0.0), 1.0) * BAR_CELLS * 8)
    blocks = "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")
    return Text(f"{value:.3f} {blocks.ljust(BAR_CELLS)}")


def _row(figures: LanguageFigures) -> tuple[str | Text, ...]:
    seen = inert.text(figures.seen, style="bold" if figures.seen == "unseen" else "dim")
    bias = "–" if figures.rank_distance is None else f"{figures.rank_distance:.1f}"
    return (inert.text(figures.lang), seen, bar(figures.mono), bar(figures.cross), bar(figures.multi), bias)


class LanguageTable(DataTable):
    """Rebuilt only when the results change (rarely: at the end of a run)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple[dict, ...] | None = None

    def on_mount(self) -> None:
        for label in ("lang", "seen", "mono mAP", "cross mAP", "multi mAP", "rank dist."):
            self.add_column(label, key=label)

    def show(self, results: tuple[dict, ...], bench: str) -> None:
        if results == self._shown:
            return
        self._shown = results
        self.clear()
        for figures in language_rows(list(results), bench):
            self.add_row(*_row(figures), key=figures.lang)
