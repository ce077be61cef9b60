"""The base of every live screen: the store is re-read on a timer in a thread worker, one read
at a time, and what was read comes back to the UI thread as a message."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.runs.store import Store


class PolledScreen(Screen):
    """Re-reads the store every ``refresh_s`` while ``wants_read`` holds (by default: while it
    is the current screen), never two reads at once. Subclasses say what to read (``read``,
    off the UI thread, with the store open) and how to show it (``show``); ``heading`` names
    what is shown, in the sub-title. A read that fails with one of ``READ_ERRORS`` is shown by
    ``show_error`` (by default in the sub-title), so a store that is busy, damaged or gone
    never stops the app."""

    #: What a read may fail with and the screen shows rather than raises.
    READ_ERRORS: tuple[type[Exception], ...] = (HybtuiError, sqlite3.Error)

    @dataclass
    class Loaded(Message):
        """What ``read`` returned (or why the store could not be read)."""

        data: Any
        error: str | None = None

    def __init__(self, store_path: Path, refresh_s: float) -> None:
        super().__init__()
        self.store_path = store_path
        self.refresh_s = refresh_s
        self.polling: Timer | None = None
        self._loading = False

    @property
    def heading(self) -> str:
        raise NotImplementedError

    def read(self, store: Store) -> Any:
        raise NotImplementedError

    def show(self, data: Any) -> None:
        raise NotImplementedError

    def show_error(self, error: str) -> None:
        self.sub_title = inert.visible(f"{self.heading}: {error}")

    def wants_read(self) -> bool:
        """Another screen covering this one needs nothing from it: it reads again when shown."""
        return self.is_current

    def on_mount(self) -> None:  # Textual runs it after a subclass's own on_mount
        self.sub_title = self.heading
        self.reload()
        self.polling = self.set_interval(self.refresh_s, self.reload)

    def reload(self) -> None:
        """Start a read unless one is in flight or ``wants_read`` says no."""
        if self._loading or not self.wants_read():
            return
        self._loading = True
        self._read()

    @work(thread=True, group="polled-read")
    def _read(self) -> None:
        try:
            with Store(self.store_path) as store:
                data = self.read(store)
        except self.READ_ERRORS as exc:
            self.post_message(self.Loaded(None, error=str(exc)))
            return
        self.post_message(self.Loaded(data))

    def on_polled_screen_loaded(self, message: Loaded) -> None:
        self._loading = False
        if message.error is not None:
            self.show_error(message.error)
            return
        self.sub_title = self.heading
        self.show(message.data)
