"""A run's end, kept in its directory where a full disk or an unwritable store cannot lose it.

The worker allocates ``runs/<id>/outcome.json`` (OUTCOME_BYTES of blanks) when it starts
and, when it ends, overwrites it in place with ``os.pwrite`` — padded to the same size,
never truncated: rewriting blocks a file already owns needs no free space (tmpfs, ext4,
xfs). If the store could not take the end (disk full, lock timeout), the orphan sweep of
whichever process opens the store next reads this record and ends the run with it,
instead of calling it crashed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

OUTCOME = "outcome.json"
OUTCOME_BYTES = 16384


class OutcomeRecord:
    """The outcome file of one attempt, opened and allocated up front."""

    def __init__(self, run_dir: Path, pid: int):
        self.pid = pid
        self._fd = os.open(run_dir / OUTCOME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._write(b"")  # allocates the blocks and clears the last attempt's outcome
        except OSError:
            os.close(self._fd)
            raise

    def record(self, status: str, step: int, exit_code: int, error: str | None = None) -> None:
        """Overwrite the record (the error is shortened to fit) and fsync it."""
        entry = {
            "pid": self.pid,
            "status": status,
            "step": int(step),
            "exit_code": exit_code,
            "error": error,
            "time": time.time(),
        }
        data = json.dumps(entry).encode()
        if len(data) > OUTCOME_BYTES and error:
            room = len(error) - (len(data) - OUTCOME_BYTES) - 64
            entry["error"] = error[: max(room, 0)] + " …"
            data = json.dumps(entry).encode()
        self._write(data)

    def _write(self, data: bytes) -> None:
        os.pwrite(self._fd, data.ljust(OUTCOME_BYTES), 0)
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_outcome(run_dir: Path, pid: int) -> dict[str, Any] | None:
    """The outcome recorded by worker ``pid`` in ``run_dir``; None if that worker recorded
    none (killed with -9, or an older attempt's record)."""
    try:
        text = (run_dir / OUTCOME).read_bytes().strip()
        entry = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("pid") != pid:
        return None
    return entry
