"""A yes/no question in front of the current screen, for actions that cannot be undone."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from hybtui import inert


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True on ``y`` and False on ``n`` or escape: only an explicit yes acts."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(inert.text(f"{self.question} y/n"), id="confirm-question")
            if self.detail:
                yield Static(Text(inert.lines(self.detail)), id="confirm-detail")  # a line per run named

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
