"""Live tables that take whole snapshots and apply them in place: the run list, with a
marked subset of runs (for comparison, deletion, export), and the grid list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple, Protocol

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from hybtui.tui.snapshot import RunRow

#: (column key, header); cells in RunRow follow this order.
COLUMNS = (("id", "id"), ("name", "name"), ("model", "model"), ("sampler", "sampler"), ("alpha", "α"),
           ("train", "train"), ("status", "status"), ("mono", "mono"), ("cross", "cross"),
           ("multi", "multi"), ("rank_distance", "rd"), ("age", "age"))
#: Columns holding formatted numbers, which sort as numbers.
FIGURES = frozenset({"alpha", "mono", "cross", "multi", "rank_distance"})
#: Shown before the id of a marked run.
MARK = "▶ "


class Row(Protocol):
    """What a live table shows: a key, and cells in the table's column order."""

    key: str
    cells: tuple


class SortOrder(NamedTuple):
    """An order of the run list: a column (None: the store's newest first) and its direction."""

    label: str
    column: str | None = None
    descending: bool = False


def sort_rows(rows: Sequence[RunRow], order: SortOrder) -> tuple[RunRow, ...]:
    """``rows`` in ``order``; runs without a value in the column (not evaluated yet) come last
    whatever the direction, and ties keep their newest-first order."""
    if order.column is None:
        return tuple(rows)
    index = [key for key, _ in COLUMNS].index(order.column)
    value = float if order.column in FIGURES else str.lower
    present = [row for row in rows if str(row.cells[index])]
    missing = [row for row in rows if not str(row.cells[index])]
    present.sort(key=lambda row: value(str(row.cells[index])), reverse=order.descending)
    return (*present, *missing)


class LiveTable(DataTable):
    """A row-cursor table of ``COLUMNS``. ``apply`` diffs a snapshot against what is shown:
    changed cells are updated, new rows added and gone ones removed, by key, so the cursor
    stays on its row and nothing flickers. The first column tells rows apart."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: dict[str, tuple] = {}

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    @property
    def highlighted_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def cells_of(self, row: Row) -> tuple:
        """The cells shown for ``row`` (subclasses decorate them)."""
        return tuple(row.cells)

    def apply(self, rows: Sequence[Row]) -> None:
        """Show exactly ``rows``, in their order, changing only what differs."""
        current = self.highlighted_key
        wanted = {row.key for row in rows}
        for key in [key for key in self._shown if key not in wanted]:
            self.remove_row(key)
            del self._shown[key]
        for row in rows:
            cells = self.cells_of(row)
            old = self._shown.get(row.key)
            if old is None:
                self.add_row(*cells, key=row.key)
            elif old != cells:
                for (column, _), before, after in zip(self.COLUMNS, old, cells):
                    if before != after:
                        self.update_cell(row.key, column, after, update_width=True)
            self._shown[row.key] = cells
        reordered = [row.key.value for row in self.ordered_rows] != [row.key for row in rows]
        if reordered:
            # DataTable sorts by cell values, not keys: rank rows by their first cell's text.
            rank = {str(self._shown[row.key][0]): index for index, row in enumerate(rows)}
            self.sort(self.COLUMNS[0][0], key=lambda cell: rank[str(cell)])
        if current in wanted:  # follow the cursor's row only where it moved: a refresh must not scroll
            self.move_cursor(row=self.get_row_index(current), scroll=reordered)


class RunsTable(LiveTable):
    """Runs in the order given. ``marked`` holds run ids in the order they were marked;
    marks outlive the filter hiding their runs."""

    COLUMNS = COLUMNS
    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.marked: list[str] = []

    @property
    def highlighted_run(self) -> str | None:
        """The id of the run under the cursor, if any."""
        return self.highlighted_key

    def toggle_mark(self, run_id: str) -> None:
        """Mark the run, or unmark it."""
        if run_id in self.marked:
            self.unmark([run_id])
        else:
            self.marked.append(run_id)
            self._show_mark(run_id)

    def unmark(self, run_ids: Sequence[str]) -> None:
        """Drop the marks of these runs (deleted ones included)."""
        for run_id in run_ids:
            if run_id in self.marked:
                self.marked.remove(run_id)
                self._show_mark(run_id)

    def _show_mark(self, run_id: str) -> None:
        if run_id in self._shown:
            id_cell = self._id_cell(run_id)
            self.update_cell(run_id, "id", id_cell, update_width=True)
            self._shown[run_id] = (id_cell, *self._shown[run_id][1:])

    def _id_cell(self, run_id: str) -> str | Text:
        return Text(MARK + run_id, style="bold magenta") if run_id in self.marked else run_id

    def cells_of(self, row: Row) -> tuple:
        return (self._id_cell(row.key), *row.cells[1:])
