"""Live tables that take whole snapshots and apply them in place: the run list, with a
marked subset of runs (for comparison, deletion, export), and the grid list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple, Protocol

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from hybtui.tui.viewmodels import RunRow

#: (column key, header); cells in RunRow follow this order.
COLUMNS = (
    ("id", "id"),
    ("name", "name"),
    ("model", "model"),
    ("sampler", "sampler"),
    ("alpha", "α"),
    ("train", "train"),
    ("status", "status"),
    ("devices", "devices"),
    ("mono", "mono"),
    ("cross", "cross"),
    ("multi", "multi"),
    ("rank_distance", "rd"),
    ("age", "age"),
)
#: Shown before the first cell of a marked run.
MARK = "▶ "
#: Below this width the NARROW_HIDDEN columns are left out and names are cut to NARROW_NAME.
WIDE = 140
NARROW_HIDDEN = frozenset({"id", "model", "train", "alpha"})
NARROW_NAME = 14
#: What the devices column takes from the names' share when narrow (``gpu 0,1`` and its padding).
DEVICES_WIDTH = 9


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
    present = [row for row in rows if row.sort_value(order.column) is not None]
    missing = [row for row in rows if row.sort_value(order.column) is None]
    present.sort(key=lambda row: row.sort_value(order.column), reverse=order.descending)
    return (*present, *missing)


class LiveTable(DataTable):
    """A row-cursor table of ``COLUMNS`` (or the subset ``visible_columns`` names). ``apply`` diffs a
    snapshot against what is shown: changed cells are updated, new rows added and gone
    ones removed, by key, so the cursor stays on its row and nothing flickers; a new
    order rebuilds the rows (sorting, or a new run on top: rare)."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: dict[str, tuple] = {}
        self._rows: Sequence[Row] = ()
        self.visible_columns: frozenset[str] = frozenset(key for key, _ in self.COLUMNS)

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in self.shown_columns:
            self.add_column(label, key=key, width=self.column_width(key))

    def column_width(self, key: str) -> int | None:
        """A fixed width for column ``key`` (None: as wide as its widest cell)."""
        return None

    @property
    def shown_columns(self) -> list[tuple[str, str]]:
        return [(key, label) for key, label in self.COLUMNS if key in self.visible_columns]

    def show_columns(self, visible: frozenset[str], force: bool = False) -> None:
        """Show only the columns named in ``visible`` (rebuilding the table if that changes,
        or when ``force``d because column widths changed)."""
        if force or visible != self.visible_columns:
            self.visible_columns = visible
            self.clear(columns=True)
            self._shown.clear()
            self._add_columns()
            self.apply(self._rows)

    @property
    def highlighted_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def cells_of(self, row: Row) -> tuple:
        """The cells shown for ``row``: those of the visible columns (subclasses decorate them)."""
        return tuple(cell for (key, _), cell in zip(self.COLUMNS, row.cells) if key in self.visible_columns)

    def apply(self, rows: Sequence[Row], current: str | None = None) -> None:
        """Show exactly ``rows``, in their order, changing only what differs; the cursor
        stays on its row (or moves to ``current``)."""
        self._rows = rows
        current = current or self.highlighted_key
        wanted = [row.key for row in rows]
        kept = set(wanted)
        if [row.key.value for row in self.ordered_rows if row.key.value in kept] != [
            key for key in wanted if key in self._shown
        ]:
            self.clear()
            self._shown.clear()
        for key in [key for key in self._shown if key not in kept]:
            self.remove_row(key)
            del self._shown[key]
        appended = not self._shown
        for row in rows:
            cells = self.cells_of(row)
            old = self._shown.get(row.key)
            if old is None:
                self.add_row(*cells, key=row.key)
            elif old != cells:
                for (column, _), before, after in zip(self.shown_columns, old, cells):
                    if before != after:
                        self.update_cell(row.key, column, after, update_width=True)
            self._shown[row.key] = cells
        if [row.key.value for row in self.ordered_rows] != wanted:  # new rows were appended below older ones
            self.clear()
            self._shown.clear()
            return self.apply(rows, current)
        if current in self._shown:  # follow the cursor's row; only a rebuild may scroll
            self.move_cursor(row=self.get_row_index(current), scroll=appended)


class RunsTable(LiveTable):
    """Runs in the order given. ``marked`` holds run ids in the order they were marked;
    marks outlive the filter hiding their runs. Narrower than WIDE columns, the id, model,
    α (the sampler cell names it) and training-language columns give way so the rest fits 80 columns.
    The devices column (GPUs, scheduler job) shows only while a shown run has devices: a store of
    CPU runs spends no width on an empty column."""

    COLUMNS = COLUMNS
    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.marked: list[str] = []
        self._name_width: int | None = None
        self._with_devices = False

    def on_resize(self) -> None:
        name_width = self.column_width("name")
        self.show_columns(self.fitted_columns(), force=name_width != self._name_width)
        self._name_width = name_width

    def fitted_columns(self) -> frozenset[str]:
        """The columns this width and these runs call for."""
        shown = frozenset(key for key, _ in COLUMNS) - (set() if self._with_devices else {"devices"})
        return shown if self.size.width >= WIDE else shown - NARROW_HIDDEN

    def apply(self, rows: Sequence[RunRow], current: str | None = None) -> None:
        """As LiveTable's, with the devices column shown or left out as the runs call for."""
        with_devices = any(row.run.devices for row in rows)
        if with_devices != self._with_devices:
            self._with_devices = with_devices
            self._rows = rows
            self._name_width = self.column_width("name")
            self.show_columns(self.fitted_columns(), force=True)
        super().apply(rows, current)

    def column_width(self, key: str) -> int | None:
        """Narrow, names get what the other columns leave (at least NARROW_NAME; the detail
        view shows all of a name)."""
        if key != "name" or self.size.width >= WIDE:
            return None
        devices = DEVICES_WIDTH if self._with_devices else 0
        return max(NARROW_NAME, min(36, self.size.width - 66 - devices))

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
        row = next((row for row in self._rows if row.key == run_id), None)
        if row is not None and run_id in self._shown:
            cells = self.cells_of(row)
            self.update_cell(run_id, self.shown_columns[0][0], cells[0], update_width=True)
            self._shown[run_id] = cells

    def cells_of(self, row: Row) -> tuple:
        """The first visible cell carries the mark of a marked run."""
        first, *rest = super().cells_of(row)
        if row.key in self.marked:
            first = Text(MARK + str(first), style="bold magenta")
        return (first, *rest)
