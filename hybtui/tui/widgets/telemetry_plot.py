"""A run's GPUs over time, from the NVML samples its worker records: utilisation % and memory
used per GPU as curves (memory on the right axis), and each GPU's latest power and temperature
as text, since those matter as they are now rather than as a history."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from hybtui import inert
from hybtui.formatting import number
from hybtui.tui.widgets.loss_plot import LossPlot

MIB_PER_GIB = 1024


class TelemetryPlot(LossPlot):
    """Per GPU, utilisation (%) and memory used (GiB) against minutes since the run's first
    sample; kept and drawn as the loss plot keeps and draws its curves."""

    X_LABEL = "minutes"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start: float | None = None
        #: gpu id → its newest sample
        self.latest: dict[str, dict[str, Any]] = {}

    def heading(self) -> str:
        return "GPU utilisation % · memory used GiB (right axis)"

    def add_samples(self, samples: Iterable[dict[str, Any]]) -> None:
        """Add newly read ``Store.telemetry`` rows (oldest first); call ``draw`` after."""
        for sample in samples:
            if self.start is None:
                self.start = sample["time"]
            gpu, minutes = sample["gpu"], (sample["time"] - self.start) / 60
            if sample["utilization"] is not None:
                self.extend(((minutes, sample["utilization"]),), label=f"gpu {gpu} %")
            if sample["memory_used"] is not None:
                self.extend(((minutes, sample["memory_used"] / MIB_PER_GIB),), label=f"gpu {gpu} GiB", side="right")
            self.latest[gpu] = sample

    def summary(self) -> Text:
        """One line per GPU as last sampled: ``gpu 0  87 %  30.1/139.8 GiB  412 W  61 °C``."""
        text = Text()
        for gpu, sample in sorted(self.latest.items()):
            used, total = (sample[k] and sample[k] / MIB_PER_GIB for k in ("memory_used", "memory_total"))
            text.append_text(inert.text(f"gpu {gpu}", style="bold"))
            text.append(
                f"  {number(sample['utilization'], 0)} %"
                f"  {number(used, 1)}/{number(total, 1)} GiB"
                f"  {number(sample['power'], 0)} W"
                f"  {number(sample['temperature'], 0)} °C\n"
            )
        return text
