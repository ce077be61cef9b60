"""The GPUs of this host: the pool the queue allocates from, and their telemetry.

The pool is what NVML reports, restricted to the launching environment's
``CUDA_VISIBLE_DEVICES`` where that is set, or exactly ``HYBTUI_GPUS`` (``0,1,2,3``) where that
is set: for hosts without NVML, for keeping GPUs out of hybtui's hands, and for tests on a
machine with no GPU (allocating needs no CUDA). Device ids are NVML's indices, the order
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` gives CUDA, so a worker's ``CUDA_VISIBLE_DEVICES`` names the
GPUs allocated to it and no other.

What is held is never kept anywhere but in the store: a running local run holds the GPUs its
row lists, so an allocation survives restarts and is released by every end of a run, a crash
found by the sweep included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hybtui.errors import HybtuiError
from hybtui.runs.store import Store

ENV_POOL = "HYBTUI_GPUS"
MIB = 1024 * 1024


@contextmanager
def _nvml() -> Iterator[Any | None]:
    """NVML, initialised, or None where the library or a driver is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no package, no libnvidia-ml, no driver: no GPUs known to NVML
        yield None
        return
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def _declared(text: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [i for i in ids if not i.isdigit()]
    if bad or len(set(ids)) != len(ids):
        raise HybtuiError(f"{ENV_POOL} must list distinct GPU indices, e.g. 0,1,2,3 (got '{text}')")
    return ids


def _nvml_indices(nvml: Any) -> dict[str, str]:
    """NVML index → UUID of every GPU NVML reports."""
    found = {}
    for index in range(nvml.nvmlDeviceGetCount()):
        uuid = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(index))
        found[str(index)] = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    return found


def pool(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The GPU ids the queue may allocate on this host (possibly none)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_POOL) is not None:
        return _declared(env[ENV_POOL])
    with _nvml() as nvml:
        found = _nvml_indices(nvml) if nvml is not None else {}
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return tuple(found)
    by_uuid = {uuid: index for index, uuid in found.items()}
    wanted = [part.strip() for part in visible.split(",") if part.strip()]
    return tuple(dict.fromkeys(by_uuid.get(w, w) for w in wanted if w in found or w in by_uuid))


def held(store: Store) -> dict[str, str]:
    """GPU id → the id of the running local run that holds it."""
    rows = store.db.execute(
        "SELECT id, gpus FROM runs WHERE status = 'running' AND gpus IS NOT NULL AND ifnull(backend, 'local') = 'local'"
    ).fetchall()
    return {gpu: run_id for run_id, gpus in rows for gpu in gpus.split(",") if gpu}


def free(store: Store, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The pool's GPUs no running run holds, in pool order."""
    taken = held(store)
    return tuple(gpu for gpu in pool(environ) if gpu not in taken)


def describe(gpus: tuple[str, ...]) -> str:
    return ",".join(gpus) if gpus else "none"


def default_count(device: str, environ: Mapping[str, str] | None = None) -> int:
    """What a run asks for when ``--gpus`` is not given: one GPU where there are GPUs to
    give and the device may use one, none for the CPU."""
    return 1 if device in ("auto", "cuda") and pool(environ) else 0


def check_count(count: int, device: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a GPU request this host can never satisfy (before anything is recorded)."""
    if count < 0:
        raise HybtuiError(f"--gpus must be 0 or more (got {count})")
    if count and device.startswith("cuda:"):
        raise HybtuiError(
            f"--device {device} names one GPU itself; with --gpus the queue chooses them: use --device cuda"
        )
    available = pool(environ)
    if count == 0:
        if device == "cuda" and available:  # where the queue hands out GPUs, a CUDA run needs one
            raise HybtuiError("--device cuda needs a GPU, but --gpus 0 asks for none")
        return  # without a pool, whether CUDA is there is the device check's to say
    if not available:
        raise HybtuiError(
            f"--gpus {count}: this host has no GPUs that NVML reports (and CUDA_VISIBLE_DEVICES allows), "
            f"and {ENV_POOL} is not set; use --gpus 0, or declare them, e.g. {ENV_POOL}=0,1"
        )
    if count > len(available):
        raise HybtuiError(
            f"--gpus {count} is more than this host's {len(available)} GPU(s) ({describe(available)}); "
            f"a run can never get them"
        )


def per_gpu(command: list[str], count: int | None) -> list[str]:
    """A worker command (``python -m hybtui worker …``) as a torchrun group of one process per
    GPU where a run asks for several (rank 0 records; `--standalone`: a rendezvous on its own
    host, on a free port, so groups never meet)."""
    if (count or 0) <= 1:
        return command
    return [command[0], "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={count}", *command[1:]]


def worker_environment(gpus: tuple[str, ...]) -> dict[str, str]:
    """The variables that give a worker exactly its GPUs (none: no GPU at all)."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(gpus), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def visible(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The GPUs this process was given (its CUDA_VISIBLE_DEVICES, ids or UUIDs), or every GPU
    NVML reports where that is unset; none where it is empty."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return tuple(part.strip() for part in env["CUDA_VISIBLE_DEVICES"].split(",") if part.strip())
    with _nvml() as nvml:
        return tuple(_nvml_indices(nvml)) if nvml is not None else ()


def sample(gpus: tuple[str, ...]) -> list[dict[str, Any]]:
    """One telemetry sample per GPU (utilisation %, memory MiB, power W, temperature °C);
    none where NVML is missing. A reading a GPU does not support is left out."""
    samples = []
    with _nvml() as nvml:
        if nvml is None:
            return []
        now = time.time()
        for gpu in gpus:
            try:
                handle = (
                    nvml.nvmlDeviceGetHandleByIndex(int(gpu)) if gpu.isdigit() else nvml.nvmlDeviceGetHandleByUUID(gpu)
                )
            except Exception:  # not a GPU NVML knows (MIG slices and the like): no sample
                continue
            samples.append({"time": now, "gpu": gpu, **_readings(nvml, handle)})
    return samples


def _readings(nvml: Any, handle: Any) -> dict[str, float | None]:
    def read(getter):
        try:
            return float(getter())
        except Exception:  # NVMLError_NotSupported and the like: that reading stays empty
            return None

    memory = read(lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used / MIB)
    return {
        "utilization": read(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        "memory_used": memory,
        "memory_total": read(lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total / MIB),
        "power": read(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),
        "temperature": read(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
    }
