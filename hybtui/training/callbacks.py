"""What a trainer tells the outside world: one report per step and the events around it.

The trainer reports through `Events` only and never imports the store or the UI; the
worker records the events in the store and the console displays them (`Tee` for both).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hybtui.evaluation.per_query import QueryTable
from hybtui.results import ResultRow


@dataclass(frozen=True)
class StepReport:
    step: int  # 1-based: the number of optimizer steps done
    loss: float
    lr: float
    grad_norm: float
    pairs_per_s: float
    batch_type: str
    dataset: str
    #: mono: {"en": B}; cross: {"en-de": n, ...}
    languages: dict[str, int]
    seconds: float


class Events:
    """What a trainer tells the outside world; subclasses override what they need."""

    def on_start(self, total_steps: int, start_step: int) -> None: ...

    def on_step(self, report: StepReport) -> None: ...

    def on_validation(self, step: int, loss: float) -> None: ...

    def on_query_scores(self, step: int, final: bool, table: QueryTable) -> None:
        """An evaluation's per-query scores, told just before its rows (``on_eval``)."""

    def on_eval(self, step: int, rows: list[ResultRow], final: bool) -> None: ...

    def on_eval_progress(self, step: int, final: bool, label: str, done: int, total: int) -> None:
        """An evaluation encoded ``done`` of ``total`` texts of ``label`` (told at each quarter)."""

    def before_checkpoint(self, step: int) -> None:
        """Everything of steps ≤ `step` must be recorded before checkpoint `step` becomes
        visible: a resume from it never recomputes those steps."""

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_checkpoint_removed(self, step: int, path: Path) -> None:
        """Checkpoint `step` is about to be deleted (pruned): forget it before its files go."""

    def on_message(self, text: str) -> None: ...


def eval_progress_text(step: int, final: bool, label: str, done: int, total: int) -> str:
    """``step 60: final evaluation: xquad-r candidates 50%``: the same words in the log and the store."""
    return f"step {step}: {'final' if final else 'periodic'} evaluation: {label} {100 * done // max(1, total)}%"


#: The hooks of Events, in the order a run calls them first.
HOOKS = tuple(name for name in vars(Events) if name.startswith(("on_", "before_")))


class Tee(Events):
    """Every event to several listeners (e.g. the store and a console display), in order."""

    def __init__(self, *listeners: Events):
        self.listeners = listeners


def _fan_out(hook: str):
    def fan_out(self: Tee, *args) -> None:
        for listener in self.listeners:
            getattr(listener, hook)(*args)

    fan_out.__name__ = hook
    return fan_out


for _hook in HOOKS:
    setattr(Tee, _hook, _fan_out(_hook))
