"""What a screen showing runs can do to them: cancel, resume, delete and clone into the
new-run form, with the same keys and the same words wherever runs are shown (the run list,
a run's page)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

from hybtui import inert
from hybtui.config import RunConfig
from hybtui.errors import HybtuiError
from hybtui.runs import launcher
from hybtui.runs.store import Store
from hybtui.tui.screens.confirm import ConfirmScreen
from hybtui.tui.screens.new_run import NewRunScreen
from hybtui.tui.screens.new_run_fields import clone_name

#: The keys, the same on every screen that shows runs.
RUN_ACTION_BINDINGS = [
    Binding("c", "cancel_run", "Cancel"),
    Binding("r", "resume_run", "Resume"),
    Binding("d", "delete_runs", "Delete"),
    Binding("N", "clone_run", "Clone"),
]


class RunActions(Screen):
    """A screen's runs acted on off the UI thread through the launcher (it may signal or spawn
    workers, and a delete removes checkpoints). Subclasses say which run ``c`` and ``r`` act
    on (``current_run``) and which runs ``d`` deletes (``runs_to_delete``: (id, name) pairs,
    all named in the question), and how to show that runs changed (``runs_changed``)."""

    store_path: Path

    @dataclass
    class Reported(Message):
        """What the launcher answered (paths, errors: shown literally); with ``changed``, the
        runs acted on changed (their status, or they are gone)."""

        text: str
        title: str = ""
        severity: str = "information"
        changed: bool = False

    @dataclass
    class CloneRead(Message):
        """The configuration of the run ``N`` clones, as the form is to open on it."""

        run_id: str
        config: RunConfig

    @dataclass
    class Deleted(Message):
        """The runs a delete removed, and why the others were kept."""

        gone: list[str]
        errors: list[str]

    def current_run(self) -> str | None:
        raise NotImplementedError

    def runs_to_delete(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def delete_note(self) -> str:
        """A line under the runs a delete names (what it leaves alone); by default none."""
        return ""

    def runs_changed(self, gone: list[str]) -> None:
        """Runs changed status (``gone``: those deleted); by default nothing to redo."""

    def action_cancel_run(self) -> None:
        self._act("cancel")

    def action_resume_run(self) -> None:
        self._act("resume")

    def _act(self, verb: str) -> None:
        run_id = self.current_run()
        if run_id is not None:
            self._launch(verb, run_id)

    @work(thread=True, group="run-actions")
    def _launch(self, verb: str, run_id: str) -> None:
        try:
            with Store(self.store_path) as store:
                if verb == "cancel":
                    outcome = launcher.cancel(store, run_id)
                else:
                    launcher.resume(store, run_id)
                    outcome = "queued again"
        except (HybtuiError, sqlite3.Error, OSError) as exc:
            self.post_message(self.Reported(str(exc), f"cannot {verb}", "error"))
            return
        self.post_message(self.Reported(f"run {run_id}: {outcome}", changed=True))

    def action_clone_run(self) -> None:
        """The new-run form on a copy of the run's configuration, renamed, to edit and launch."""
        run_id = self.current_run()
        if run_id is not None:
            self._read_clone(run_id)

    @work(thread=True, group="run-actions")
    def _read_clone(self, run_id: str) -> None:
        try:
            with Store(self.store_path) as store:
                config = store.get_run(run_id).run_config()
        except (HybtuiError, sqlite3.Error, OSError) as exc:
            self.post_message(self.Reported(str(exc), "cannot clone", "error"))
            return
        self.post_message(self.CloneRead(run_id, config.replace(name=clone_name(config.name))))

    def on_run_actions_clone_read(self, message: CloneRead) -> None:
        self.app.push_screen(NewRunScreen(self.store_path, message.config, cloned_from=message.run_id))

    def action_delete_runs(self) -> None:
        """Delete once confirmed, the question naming every run it removes."""
        runs = self.runs_to_delete()
        if not runs:
            self.notify("no run to delete", title="delete", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete([run_id for run_id, _ in runs])

        listing = "\n".join([*(f"{run_id}  {name}".rstrip() for run_id, name in runs), self.delete_note()]).rstrip()
        self.app.push_screen(ConfirmScreen(f"delete {len(runs)} run(s) and their checkpoints?", listing), answered)

    @work(thread=True, group="run-actions")
    def _delete(self, run_ids: list[str]) -> None:
        """The store refuses running runs; the launcher fills a slot that a deleted run held."""
        errors = []
        try:
            with Store(self.store_path) as store:
                for run_id in run_ids:
                    try:
                        launcher.delete(store, run_id)
                    except HybtuiError as exc:
                        errors.append(str(exc))
                left = {run.id for run in store.list_runs()}
        except (HybtuiError, sqlite3.Error) as exc:
            self.post_message(self.Deleted([], [str(exc)]))
            return
        self.post_message(self.Deleted([run_id for run_id in run_ids if run_id not in left], errors))

    def on_run_actions_deleted(self, message: Deleted) -> None:
        for error in message.errors:
            self.notify(inert.visible(error), title="cannot delete", severity="error", markup=False)
        if message.gone:
            self.notify(f"deleted {len(message.gone)} run(s)")
        self.runs_changed(message.gone)

    def on_run_actions_reported(self, message: Reported) -> None:
        self.notify(inert.lines(message.text), title=message.title, severity=message.severity, markup=False)
        if message.changed:
            self.runs_changed([])
