"""How numbers, sizes, durations and ages read everywhere: the CLI, the reports and the app.

One module, so a figure reads the same in `hybtui compare`, a grid report and the app
(three decimals for mAP, one for rank distance, "–" where there is nothing).
"""

from __future__ import annotations

import math


def number(value: float | None, digits: int = 3, missing: str = "–") -> str:
    """A figure to ``digits`` decimals; ``missing`` for no value (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return f"{value:.{digits}f}"


def figure(value: float | None, heading: str, sd: float | None = None, signed: bool = False) -> str:
    """A report number: rank distance to one decimal, mAP to three, ± sd over seeds."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    spec = ".1f" if "rank" in heading else ".3f"
    text = format(value, ("+" if signed else "") + spec)
    return text + (f" ± {format(sd, spec)}" if sd is not None else "")


def age(seconds: float) -> str:
    """How long ago, in its largest unit (``45s``, ``22m``, ``3h``, ``2d``): a column of ages
    stays narrow."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def human_duration(seconds: float) -> str:
    """Two significant units at most: ``45s``, ``3m05s``, ``2h10m``, ``4d03h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def human_bytes(n: float) -> str:
    """Decimal units, one decimal above bytes: ``932 B``, ``1.4 MB``, ``2.1 GB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
