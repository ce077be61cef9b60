"""A stand-in for NVML's Python binding (``pynvml``) on a machine with no GPU: four GPUs with
fixed readings. Tests write it as ``pynvml.py`` into a directory they put on PYTHONPATH, so
real worker processes sample "their" GPUs through hybtui's own NVML code."""

from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
GPUS = 4


class NVMLError(Exception):
    pass


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return GPUS


def nvmlDeviceGetHandleByIndex(index):
    if not 0 <= index < GPUS:
        raise NVMLError("Invalid Argument")
    return index


def nvmlDeviceGetHandleByUUID(uuid):
    return nvmlDeviceGetHandleByIndex(int(uuid.removeprefix("GPU-fake-")))


def nvmlDeviceGetUUID(handle):
    return f"GPU-fake-{handle}"


def nvmlDeviceGetUtilizationRates(handle):
    return SimpleNamespace(gpu=40 + handle, memory=10)


def nvmlDeviceGetMemoryInfo(handle):
    return SimpleNamespace(used=(1000 + handle) * 2**20, total=81920 * 2**20, free=0)


def nvmlDeviceGetPowerUsage(handle):
    return 250_000 + handle  # milliwatts


def nvmlDeviceGetTemperature(handle, sensor):
    raise NVMLError("Not Supported")  # a reading a GPU lacks stays empty
