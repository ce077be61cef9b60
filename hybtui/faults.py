"""Fault injection for the crash tests: the worker SIGKILLs itself at a named point.

``HYBTUI_FAULT=POINT[:STEP]`` in a worker's environment arms one point; the worker takes
the variable out of its environment when it starts (`arm`), so the runs it starts next
and a later resume run clean. Unset, every `point` call is one comparison. The points, in
the order a training step meets them (STEP is the optimizer step, or the checkpoint's):

- ``step``: right after step STEP is reported (its metrics may be unflushed)
- ``before-flush`` / ``after-flush``: around the metrics flush that precedes checkpoint STEP
- ``checkpoint-staging``: inside the staged writes of checkpoint STEP (weights written, no trainer state)
- ``checkpoint-switch``: checkpoint STEP sealed, right before its atomic rename into place
- ``checkpoint-switched``: right after the rename, before older checkpoints are pruned
- ``checkpoint-prune``: an older checkpoint's record is gone, its files not yet
- ``final-validation``: the final validation loss is reported, the final evaluation not yet
- ``final-results``: the final results are stored, the trainer state not yet dropped
- ``finished-prune``: the trainer state is dropped, the run not yet recorded finished
"""

from __future__ import annotations

import os
import signal

ENV = "HYBTUI_FAULT"
POINTS = (
    "step",
    "before-flush",
    "after-flush",
    "checkpoint-staging",
    "checkpoint-switch",
    "checkpoint-switched",
    "checkpoint-prune",
    "final-validation",
    "final-results",
    "finished-prune",
)

_armed: tuple[str, int | None] | None = None


def arm() -> None:
    """Read (and remove) HYBTUI_FAULT: called once by the worker process."""
    global _armed
    spec = os.environ.pop(ENV, None)
    if not spec:
        return
    name, _, step = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={spec}: unknown point '{name}'; one of {', '.join(POINTS)}")
    _armed = (name, int(step) if step else None)


def point(name: str, step: int | None = None) -> None:
    """Die here if this point (at this step, when the armed spec names one) is armed."""
    if _armed is not None and _armed[0] == name and _armed[1] in (None, step):
        os.kill(os.getpid(), signal.SIGKILL)
