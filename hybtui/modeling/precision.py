"""Which precision a run computes in: `auto` is bf16 autocast where the hardware computes bf16
natively — x86 CPUs with AVX512-BF16 or AMX, CUDA GPUs of compute capability 8.0 or more — and
fp32 elsewhere, where emulated bf16 would be slower than fp32 and buy nothing.

Torch-free at import: the CLI and the app's form check a precision before a run is recorded
without loading torch. A CPU is judged by its /proc/cpuinfo flags (torch's own CPU capability
names the vector width, not bf16); before a run, a GPU is judged through NVML, since asking the
CUDA runtime would fix the GPUs this process sees before the queue hands out its own; the
worker, which owns its device, asks torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybtui.config import PRECISIONS
from hybtui.errors import HybtuiError

#: /proc/cpuinfo flags of native bf16 arithmetic (AVX512-BF16: Cooper Lake, Sapphire Rapids, Zen 4
#: and later; AMX: Sapphire Rapids and later).
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: Overrides the CPU flags read from /proc/cpuinfo (space- or comma-separated; empty: none).
FLAGS_ENV = "HYBTUI_CPU_FLAGS"
#: Tensor cores compute bf16 from Ampere (compute capability 8.0) on.
CUDA_BF16_MAJOR = 8
#: The event a worker records once it resolved its precision: ``precision bf16 (auto: avx512_bf16)``.
EVENT = re.compile(r"^precision ((?:fp32|bf16)(?: \(.*\))?)$")


@dataclass(frozen=True)
class Precision:
    """What a run computes in (fp32 or bf16) and why: asked for, or what `auto` found."""

    used: str
    why: str

    @property
    def bf16(self) -> bool:
        return self.used == "bf16"

    def describe(self) -> str:
        return f"{self.used} ({self.why})"

    def event(self) -> str:
        return f"precision {self.describe()}"


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (`HYBTUI_CPU_FLAGS` overrides; none where /proc/cpuinfo is absent)."""
    override = os.environ.get(FLAGS_ENV)
    if override is not None:
        return frozenset(override.replace(",", " ").split())
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively, and the flags that say so (or that none do)."""
    found = [flag for flag in CPU_BF16_FLAGS if flag in cpu_flags()]
    return bool(found), ", ".join(found) or "this CPU has no AVX512-BF16 or AMX"


def cuda_bf16(device: str) -> tuple[bool, str]:
    """Whether a CUDA device computes bf16 natively, as torch tells (emulation does not count)."""
    import torch

    index = torch.device(device).index
    with torch.cuda.device(index):
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    return native, f"{device} {'has' if native else 'has no'} native bf16 (compute capability 8.0 or more)"


def native_bf16(device: str) -> tuple[bool, str]:
    """Whether a resolved torch device (``cpu``, ``cuda:0``, ``mps``) computes bf16 natively, and why."""
    kind = device.partition(":")[0]
    if kind == "cpu":
        return cpu_bf16()
    if kind == "cuda":
        return cuda_bf16(device)
    return False, f"{kind} is not known to compute bf16 natively"


def resolve(requested: str, device: str) -> Precision:
    """The precision a run on ``device`` computes in; `bf16` where the hardware lacks it is refused."""
    if requested == "fp32":
        return Precision("fp32", "asked")
    native, why = native_bf16(device)
    if requested == "bf16":
        if not native:
            raise refused(why)
        return Precision("bf16", "asked")
    if requested != "auto":
        raise HybtuiError(f"--precision must be one of {', '.join(PRECISIONS)} (got '{requested}')")
    return Precision("bf16" if native else "fp32", f"auto: {why}")


def refused(why: str) -> HybtuiError:
    return HybtuiError(
        f"--precision bf16: {why}, so bf16 would be emulated, slower than fp32; "
        "use --precision auto (bf16 where the hardware has it) or fp32"
    )


def check(requested: str, device: str, here: bool = True) -> None:
    """Refuse, before a run is recorded, `bf16` on hardware without it (``here`` False: the run
    executes elsewhere, whose hardware its worker judges). Loads no torch for a CPU run."""
    if requested not in PRECISIONS:
        raise HybtuiError(f"--precision must be one of {', '.join(PRECISIONS)} (got '{requested}')")
    if requested != "bf16" or not here:
        return
    kind = device.partition(":")[0] if device not in ("", "auto") else _auto_kind()
    if kind == "cpu":
        native, why = cpu_bf16()
    elif kind == "cuda":
        native, why = _nvml_bf16()
    else:
        native, why = False, f"{kind} is not known to compute bf16 natively"
    if not native:
        raise refused(why)


def _auto_kind() -> str:
    """The kind of device `auto` resolves to here, as `check_device` asks it (NVML, not the runtime)."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _nvml_bf16() -> tuple[bool, str]:
    """Whether every GPU of this host computes bf16 natively (the queue may place the run on any);
    where NVML cannot tell, yes: the worker asks torch and refuses then."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return True, "NVML cannot tell"
    try:
        return _every_gpu(pynvml)
    except Exception:
        return True, "NVML cannot tell"
    finally:
        pynvml.nvmlShutdown()


def _every_gpu(nvml: Any) -> tuple[bool, str]:
    for index in range(nvml.nvmlDeviceGetCount()):
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(nvml.nvmlDeviceGetHandleByIndex(index))
        if major < CUDA_BF16_MAJOR:
            return False, f"GPU {index} has compute capability {major}.{minor}, below 8.0: no native bf16"
    return True, "every GPU has compute capability 8.0 or more"


def used(events: Iterable[dict]) -> str | None:
    """The precision a run recorded it used (``bf16 (auto: avx512_bf16)``), the newest attempt's."""
    found = None
    for event in events:
        match = EVENT.match(event["message"])
        if match:
            found = match.group(1)
    return found
