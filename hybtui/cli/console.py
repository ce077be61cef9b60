"""Progress bars for foreground commands, on stderr so `--json` output stays clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hybtui.inert import visible
from hybtui.results import ResultRow, summary
from hybtui.training.callbacks import Events, StepReport, eval_progress_text

stderr = Console(stderr=True)


class ProgressBars:
    """Hands out progress callbacks, one bar per label, all in one live display."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def _task(self, label: str, total: int | None) -> TaskID:
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=total)
        return self._tasks[label]

    def counter(self, label: str) -> Callable[[int, int], None]:
        """A `progress(done, total)` callback for `label` (e.g. texts encoded)."""

        def update(done: int, total: int) -> None:
            self._progress.update(self._task(label, total), completed=done, total=total)

        return update

    def download(self, label: str, done: int, total: int | None) -> None:
        self._progress.update(self._task(f"download {label}", total), completed=done, total=total)

    def message(self, text: str) -> None:
        self._progress.console.print(visible(text), style="dim", markup=False)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressBars]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
        disable=not enabled,
    )
    with progress:
        yield ProgressBars(progress)


def _headline(metrics: dict[str, float]) -> tuple[str, ...]:
    """The metrics a progress line shows: mAP (LAReQA), else MIRACL's nDCG@10 and Recall@100."""
    return ("map",) if "map" in metrics else tuple(m for m in ("ndcg@10", "recall@100") if m in metrics)


class TrainingProgress(Events):
    """Foreground training display: one progress bar with loss, lr and throughput, plus
    a line per evaluation, validation and checkpoint."""

    def __init__(self, total_steps: int, enabled: bool = True):
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=stderr,
            disable=not enabled,
        )
        self._task = self._progress.add_task("train", total=total_steps, status="")
        self._smoothed: float | None = None

    def __enter__(self) -> TrainingProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def on_start(self, total_steps: int, start_step: int) -> None:
        self._progress.update(self._task, total=total_steps, completed=start_step)

    def on_step(self, report: StepReport) -> None:
        self._smoothed = report.loss if self._smoothed is None else 0.9 * self._smoothed + 0.1 * report.loss
        languages = (
            ",".join(sorted(report.languages)) if report.batch_type == "mono" else f"{len(report.languages)} pairs"
        )
        status = (
            f"loss {self._smoothed:.3f} lr {report.lr:.1e} {report.pairs_per_s:.0f} pairs/s "
            f"{report.batch_type}:{languages}"
        )
        self._progress.update(self._task, completed=report.step, status=status)

    def on_validation(self, step: int, loss: float) -> None:
        self._progress.console.print(f"step {step}: validation loss {loss:.4f}")

    def on_eval(self, step: int, rows: list[ResultRow], final: bool) -> None:
        for bench, settings in summary(rows).items():
            figures = " ".join(f"{s} {name} {m[name]:.3f}" for s, m in settings.items() for name in _headline(m))
            bias = settings.get("multi", {}).get("rank_distance")
            self._progress.console.print(
                f"step {step} {'final' if final else 'quick'} eval {bench}: {figures}"
                + (f" rank distance {bias:.1f}" if bias is not None else "")
            )

    def on_eval_progress(self, step: int, final: bool, label: str, done: int, total: int) -> None:
        self._progress.update(self._task, status=visible(eval_progress_text(step, final, label, done, total)))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._progress.console.print(visible(f"checkpoint {path}"), style="dim", markup=False)

    def on_message(self, text: str) -> None:
        self._progress.console.print(visible(text), style="dim", markup=False)


def watch_grid(store_path: Path, grid_id: str, poll_s: float = 1.0, enabled: bool = True) -> None:
    """One bar per run of a grid (steps done; the evaluation shows as the status), until
    every run has ended. The workers are detached: interrupting this only stops watching."""
    import time

    from hybtui.runs.grid import grid_runs, is_done
    from hybtui.runs.store import Store

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
        console=stderr,
        disable=not enabled,
    )
    tasks: dict[str, TaskID] = {}
    with progress, Store(store_path) as store:
        while True:
            runs = grid_runs(store, store.get_grid(grid_id))
            for cell, run in runs:
                if run is None:
                    continue
                total = max(run.total_steps or 0, 1)
                done = total if run.status == "finished" else run.step or 0
                evaluating = run.status == "running" and done >= (run.total_steps or 0)
                status = "evaluating" if evaluating else run.status
                if run.id not in tasks:
                    label = cell["label"] + (f" seed {cell['seed']}" if cell["sampler"] != "baseline" else "")
                    tasks[run.id] = progress.add_task(label, total=total, status=status)
                progress.update(tasks[run.id], completed=done, status=status)
            if is_done(runs):
                return
            time.sleep(poll_s)
