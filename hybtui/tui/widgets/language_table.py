"""Final mAP per query language and setting, with the languages seen in training marked."""

from __future__ import annotations

from textual.widgets import DataTable

from hybtui.tui.snapshot import language_rows


class LanguageTable(DataTable):
    """Rebuilt only when the results change (rarely: at the end of a run)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple[dict, ...] | None = None

    def on_mount(self) -> None:
        for label in ("lang", "seen", "mono", "cross", "multi"):
            self.add_column(label, key=label)

    def show(self, results: tuple[dict, ...], bench: str) -> None:
        if results == self._shown:
            return
        self._shown = results
        self.clear()
        for row in language_rows(list(results), bench):
            self.add_row(*row, key=row[0])
