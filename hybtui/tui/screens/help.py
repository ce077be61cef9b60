"""The keys of the screen underneath, with what they do: the footer has room for only some."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def _is_stock(active: ActiveBinding) -> bool:
    """Whether Textual itself declares the binding (cursor moves, focus, copy): every app has
    those, so they are listed only where the footer shows them."""
    for cls in type(active.node).__mro__:
        if active.binding.action in {b.action for b in Binding.make_bindings(cls.__dict__.get("BINDINGS", []))}:
            return cls.__module__.startswith("textual.")
    return False


def key_table(screen: Screen) -> Table:
    """Key and description of each binding active on ``screen``, nearest the focus first: the long
    form (a binding's tooltip) where the footer shows a short one."""
    table = Table("key", "does", box=None, header_style="bold", padding=(0, 2, 0, 0))
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if (
            binding.description
            and not binding.system
            and key != screen.app.COMMAND_PALETTE_BINDING
            and (binding.show or not _is_stock(active))
        ):
            table.add_row(screen.app.get_key_display(binding), binding.tooltip or binding.description)
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the bindings of ``screen``; escape or ``?`` closes it."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Close"), Binding("question_mark", "app.pop_screen", "Close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.underneath = screen

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Static(key_table(self.underneath), id="help-keys")
            yield Static(
                f"{self.app.get_key_display(Binding(self.app.COMMAND_PALETTE_BINDING, ''))}  "
                "command palette: every action by name",
                id="help-palette",
            )

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "keys"
        self.query_one("#help").focus()
