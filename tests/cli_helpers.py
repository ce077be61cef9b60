"""The `hybtui` command as a user runs it in the tests (a real subprocess, its exit code and
its output) and the tiny training run they submit. Not a test module; imported as
``cli_helpers`` (tests/ is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys

from hybtui.config import RunConfig

#: A tiny, fast training run: the random tiny encoder on three MLQA-R languages, evaluated on
#: English XQuAD-R.
TINY = ("--model", "tiny", "--train", "mlqa-r:en,de,es", "--eval", "xquad-r:en", "--batch-size", "8")
TINY += ("--max-length", "32")
#: The same run as a configuration (plus one warm-up step), for tests that submit it directly.
TINY_CONFIG = RunConfig(
    model="tiny", train=("mlqa-r:en,de,es",), eval=("xquad-r:en",), batch_size=8, max_length=32, warmup_steps=1
)


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
