"""A footer that keeps every key it shows: where one line cannot hold them (80 columns), they
wrap onto a second line, ROW_KEYS to a line, instead of running off the edge."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer

#: Keys on each line of a two-line footer.
ROW_KEYS = 6
#: Narrower than this, the footer takes two lines.
ONE_LINE = 120


class KeysFooter(Footer):
    """Footer's keys, laid out in a grid of ROW_KEYS columns while narrow (class ``-two-lines``)."""

    def compose(self) -> ComposeResult:
        yield from super().compose()
        self.styles.grid_size_columns = ROW_KEYS  # Footer sizes its grid to one row of every key

    def on_resize(self) -> None:
        self.set_class(self.screen.size.width < ONE_LINE, "-two-lines")
