"""The `hybtui` command: the root app, the command tree as the help lists it, and the one
place where a user error becomes a message and an exit status. The commands live in one
module per group; this module only puts them together."""

from __future__ import annotations

import sys

import typer

from hybtui.cli.common import StoreOption
from hybtui.cli.data import data_app, models_app
from hybtui.cli.evaluation import eval_command
from hybtui.cli.grids import grids_app, reproduce_command
from hybtui.cli.placement import backend_command
from hybtui.cli.runs import compare_command, runs_app
from hybtui.cli.training import sample_command, train_command, worker_command
from hybtui.errors import HybtuiError

app = typer.Typer(
    invoke_without_command=True,
    add_completion=False,
    help="Train and evaluate multilingual dense retrievers with hybrid batch sampling. With no command: open the app.",
    pretty_exceptions_enable=False,
)
# The help lists the commands, then the groups, each in the order they are registered here.
app.command("eval")(eval_command)
app.command("train")(train_command)
app.command("sample")(sample_command)
app.command("worker", hidden=True)(worker_command)
app.command("compare")(compare_command)
app.command("reproduce")(reproduce_command)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")
runs_app.command("backend")(backend_command)
app.add_typer(grids_app, name="grids")


@app.callback()
def open_app(ctx: typer.Context, store: StoreOption = None) -> None:
    """With no command, open the Textual app on the run store."""
    if ctx.invoked_subcommand is None:
        from hybtui.tui.app import run_app

        run_app(store)


def main() -> None:
    """Entry point: user errors become one clear line on stderr and exit status 2; so does,
    as a last resort, a database error that no store method turned into one. What the
    message quotes (a name, a path) cannot break the line or reach the terminal raw."""
    import sqlite3

    try:
        app()
    except HybtuiError as exc:
        _fail(str(exc))
    except sqlite3.Error as exc:
        from hybtui.runs.database import DB_NAME, store_error
        from hybtui.runs.store import store_path

        _fail(str(store_error(exc, store_path(_store_argument(sys.argv[1:])) / DB_NAME)))


def _store_argument(args: list[str]) -> str | None:
    """The --store value on a command line (typer's parse is gone by the time main() catches)."""
    for i, arg in enumerate(args):
        if arg == "--store" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--store="):
            return arg.split("=", 1)[1]
    return None


def _fail(message: str) -> None:
    """One line, whatever the message holds: a traceback never reaches the user."""
    from hybtui.inert import visible

    print(f"hybtui: error: {visible(' '.join(message.splitlines()))}", file=sys.stderr)
    sys.exit(2)
