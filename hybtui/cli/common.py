"""What every command group shares: the options that mean the same everywhere, and the
store as a command opens it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from hybtui.runs.store import Store

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Directory holding the benchmark files (env HYBTUI_DATA_DIR).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
StoreOption = Annotated[
    Path | None, typer.Option("--store", help="The run store directory (env HYBTUI_STORE, default ./store).")
]

PRECISION_HELP = "auto (bf16 autocast where the hardware computes bf16 natively, else fp32), fp32 or bf16."
PrecisionOption = Annotated[str, typer.Option("--precision", help=PRECISION_HELP)]


def open_store(store: Path | None) -> Store:
    """The run store, with its queue advanced: every command that opens the store fills the
    slots that freed since — a crash this very open swept, a run deleted elsewhere — so a
    queued run never waits for the next submit. Where the store cannot be written (a read-only
    copy, a full disk) the command still reads it, and says why nothing was started."""
    from hybtui.runs import launcher
    from hybtui.runs.store import Store, store_path

    db = Store(store_path(store))
    try:
        launcher.advance(db)
    except launcher.ADVANCE_ERRORS as exc:
        print(f"hybtui: warning: queued runs not started: {exc}", file=sys.stderr)
    except BaseException:
        db.close()
        raise
    return db
