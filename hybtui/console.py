"""Progress bars for foreground commands, on stderr so `--json` output stays clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
        self._progress.console.print(text, style="dim")


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

