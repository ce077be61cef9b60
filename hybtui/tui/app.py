"""The hybtui app: a live, keyboard-first view of one run store."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from hybtui.store import store_path as resolve_store_path
from hybtui.tui.screens.runs import RunsScreen


class HybtuiApp(App):
    """Opens on the run list. ``refresh_s`` is how often the run list is re-read (the detail
    screen reads at least twice a second); tests make it short."""

    CSS_PATH = "hybtui.tcss"
    TITLE = "hybtui"

    def __init__(self, store_path: str | Path | None = None, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.store_path = resolve_store_path(store_path)
        self.refresh_s = refresh_s

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.store_path, self.refresh_s))


def run_app(store_path: str | Path | None = None) -> None:
    """Entry point for ``hybtui`` with no arguments."""
    HybtuiApp(store_path).run()
