"""What every benchmark records and reads: the machine its figures were measured on, and
the data directory it reads the benchmark files from.

Figures mean little without the hardware beside them, so each result file carries
``machine()``. The benchmarks measure on a fixed local copy of the data, never on a
download started in the middle of a timing: the copy is named by ``HYBTUI_DATA_DIR``
(as for `hybtui --data-dir`), and a benchmark that reads data stops at once when it is unset.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from hybtui.data import sources
from hybtui.errors import HybtuiError


def machine() -> dict:
    """CPU model, cores, torch's threads and the versions the figures were measured with."""
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def data_dir() -> Path:
    """The data directory from ``HYBTUI_DATA_DIR``; a clear exit when it is unset or missing."""
    if not os.environ.get(sources.DATA_DIR_ENV):
        raise SystemExit(
            f"set {sources.DATA_DIR_ENV} to the directory holding the benchmark data "
            "(LAReQA's XQuAD-R and MLQA-R): the benchmarks read a local copy, never a download"
        )
    try:
        path = sources.data_dir_from_env(None)
    except HybtuiError as exc:
        raise SystemExit(str(exc)) from exc
    assert path is not None
    return path


def write_result(path: Path, result: dict) -> None:
    """The benchmark's figures as JSON at ``path`` (its folder created), and where they went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
