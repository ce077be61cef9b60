"""The `hybtui` command as a user runs it in the tests: a real subprocess, its exit code and
its output. Not a test module; imported as ``cli_helpers`` (tests/ is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys

#: A tiny, fast training run: the random tiny encoder on three MLQA-R languages, evaluated on
#: English XQuAD-R.
TINY = ("--model", "tiny", "--train", "mlqa-r:en,de,es", "--eval", "xquad-r:en", "--batch-size", "8")
TINY += ("--max-length", "32")


def hybtui(*args: str, check: bool = False, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m hybtui ARGS` to the end; with ``check``, a failure names its stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "hybtui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env_extra or {})},
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"hybtui {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
