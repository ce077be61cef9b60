"""The hybtui app: a live, keyboard-first view of one run store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.theme import Theme

from hybtui import inert
from hybtui.errors import HybtuiError
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.runs.store import store_path as resolve_store_path
from hybtui.tui.screens.help import HelpScreen
from hybtui.tui.screens.run_detail import RunDetailScreen
from hybtui.tui.screens.runs import RunsScreen

#: The themes ``ctrl+t`` switches between; the stylesheet uses only theme variables, so both read well.
DARK, LIGHT = "textual-dark", "textual-light"
#: The key of the store's settings.json that keeps the theme.
THEME_SETTING = "theme"


class HybtuiApp(App):
    """Opens on the run list. ``refresh_s`` is how often the run list is re-read (the detail
    screen reads at least twice a second); tests make it short. Quitting leaves the workers
    running: they are detached processes that the app only watches. As often, whatever screen
    is shown, the app advances the queue: a worker that died unnoticed is swept and its slot
    filled, so a queued run never waits for a submit while the app is open."""

    CSS_PATH = "hybtui.tcss"
    TITLE = "hybtui"
    BINDINGS = [
        Binding("question_mark", "help", "Keys"),
        Binding("ctrl+t", "toggle_theme", "Light/dark theme", show=False),
    ]

    @dataclass
    class QueueAdvanced(Message):
        """Why queued runs could not be started (None: the queue advanced, or had nothing to do)."""

        problem: str | None

    def __init__(self, store_path: str | Path | None = None, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.store_path = resolve_store_path(store_path)
        self.refresh_s = refresh_s
        self._advancing = False
        self._queue_problem: str | None = None

    def on_mount(self) -> None:
        self._restore_theme()
        self.theme_changed_signal.subscribe(self, self._keep_theme)
        self.push_screen(RunsScreen(self.store_path, self.refresh_s))
        self._keep_queue()
        self.set_interval(self.refresh_s, self._keep_queue)

    def _keep_queue(self) -> None:
        if not self._advancing:
            self._advancing = True
            self._advance_queue()

    @work(thread=True, group="queue")
    def _advance_queue(self) -> None:
        """Off the UI thread (it may spawn workers). A store that cannot be opened is the run
        list's to report; a queue that cannot advance is told once, not every refresh."""
        problem = None
        try:
            with Store(self.store_path) as store:
                try:
                    launcher.advance(store)
                except (*launcher.ADVANCE_ERRORS, sqlite3.Error) as exc:
                    problem = str(exc)
        except (HybtuiError, sqlite3.Error):
            pass
        self.post_message(self.QueueAdvanced(problem))

    def on_hybtui_app_queue_advanced(self, message: QueueAdvanced) -> None:
        self._advancing = False
        if message.problem is not None and message.problem != self._queue_problem:
            self.notify(message.problem, title="queued runs not started", severity="warning")
        self._queue_problem = message.problem

    def open_launched_run(self, run_id: str) -> None:
        """A run's page in place of the form that launched it (the page offers that form's
        clone action, so the form cannot import it)."""
        self.switch_screen(RunDetailScreen(self.store_path, run_id, min(self.refresh_s, 0.5)))

    def action_help(self) -> None:
        """List the keys of the current screen (the help itself closes on ``?``)."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def _restore_theme(self) -> None:
        """The theme last chosen on this store (``ctrl+t`` or the palette), if Textual still has it."""
        try:
            theme = launcher.settings(self.store_path).get(THEME_SETTING)
        except (OSError, ValueError):
            return
        if theme in self.available_themes:
            self.theme = theme

    def _keep_theme(self, theme: Theme) -> None:
        """Remembered in the store's settings.json: the next start opens in it."""
        try:
            if launcher.settings(self.store_path).get(THEME_SETTING) != theme.name:
                launcher.keep_settings(self.store_path, **{THEME_SETTING: theme.name})
        except (OSError, ValueError) as exc:
            self.notify(inert.visible(str(exc)), title="theme not remembered", severity="warning", markup=False)

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Into the store's exports/ (made if missing), not ~/Downloads, which many hosts lack;
        the notification names the file."""
        folder = Path(path) if path else self.store_path / "exports"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.notify(inert.visible(str(exc)), title="cannot save a screenshot", severity="error", markup=False)
            return None
        return super().deliver_screenshot(filename, str(folder), time_format)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then the run list's actions: those on the marked or shown runs
        only when the palette is opened over the run list, where those runs are in view."""
        yield from super().get_system_commands(screen)
        runs = next((s for s in self.screen_stack if isinstance(s, RunsScreen)), None)
        if runs is None:
            return
        yield SystemCommand("New run", "Configure and launch a training run", runs.action_new_run)
        yield SystemCommand(
            "Grids and reproduction reports", "The grids of `hybtui reproduce` and their reports", runs.action_grids
        )
        if screen is runs:
            yield SystemCommand("Compare marked runs", "Marked runs side by side", runs.action_compare)
            yield SystemCommand(
                "Delete marked runs",
                "Delete the marked (or highlighted) runs and their checkpoints, after a confirmation",
                runs.action_delete_runs,
            )
            yield SystemCommand(
                "Export runs",
                "Write the marked (or shown) runs as Markdown and CSV into the store's exports/",
                runs.action_export_runs,
            )
            yield SystemCommand("Sort runs", "Next order: newest, name, status, mAP, rank distance", runs.action_sort)
            yield SystemCommand("Reverse the sort", "The same order the other way round (S)", runs.action_reverse_sort)
            yield SystemCommand("Clear the marks", "Unmark every run, shown or hidden (U)", runs.action_clear_marks)


def run_app(store_path: str | Path | None = None) -> None:
    """Entry point for ``hybtui`` with no arguments. The store is opened once before the
    screen is taken, so a damaged, foreign or too new one is refused in one line (StoreError)."""
    Store(store_path).close()
    HybtuiApp(store_path).run()
