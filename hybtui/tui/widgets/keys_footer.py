"""A footer that keeps every key it shows: where one line cannot hold them (80 columns), they
wrap onto a second line, half of them to a line, instead of running off the edge."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.widgets import Footer

#: Narrower than this, the footer takes two lines.
ONE_LINE = 120


class KeysFooter(Footer):
    """Footer's keys, laid out in two rows while narrow (class ``-two-lines``), compact and
    without the palette's key (ctrl+p still opens it; ``?`` lists it), so each key has room."""

    def compose(self) -> ComposeResult:
        keys = list(super().compose())
        yield from keys
        # Footer sizes its grid to one row of every key
        self.styles.grid_size_columns = math.ceil(len(keys) / 2)

    def on_resize(self) -> None:
        narrow = self.screen.size.width < ONE_LINE
        self.set_class(narrow, "-two-lines")
        self.show_command_palette = not narrow
        self.compact = narrow
