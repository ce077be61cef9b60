"""Live tables that take whole snapshots and apply them in place: the run list, with a
marked subset of runs (for comparison, deletion, export), and the grid list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple, Protocol

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from hybtui.tui.viewmodels import RunRow, status_room

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
#: Below this width the NARROW_HIDDEN columns are left out, every other column is as wide as its
#: widest cell and names take what is left (NARROW_NAME to NAME_MAX, their middle elided).
WIDE = 140
NARROW_HIDDEN = frozenset({"id", "model", "train", "alpha"})
NARROW_NAME, NAME_MAX = 14, 40
#: Left out in this order while names would get less than NARROW_NAME (a long live status, devices).
NARROW_SPARED = ("age", "rank_distance")
#: What a DataTable adds to each column (a space either side) and takes for its vertical scrollbar.
CELL_PADDING, SCROLLBAR = 2, 2


def elide_middle(text: str, width: int) -> str:
    """``text`` in ``width`` cells, its middle replaced by ``…``: runs of a grid share the start of
    their names and differ at the end (``reproduce-quick hybrid α=0.5 seed 2``)."""
    if cell_len(text) <= width:
        return text
    head = max(1, (width - 1) // 4)
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]


class Row(Protocol):
    """What a live table shows: a key, and cells in the table's column order."""

    key: str
    cells: tuple


class SortOrder(NamedTuple):
    """An order of the run list: a column (None: the store's newest first), its direction, and how
    it reads either way."""

    label: str
    reversed_label: str
    column: str | None = None
    descending: bool = False


def sort_rows(rows: Sequence[RunRow], order: SortOrder, reverse: bool = False) -> tuple[RunRow, ...]:
    """``rows`` in ``order`` (``reverse``d); runs without a value in the column (not evaluated yet)
    come last whatever the direction, and ties keep their newest-first order."""
    if order.column is None:
        return tuple(reversed(rows)) if reverse else tuple(rows)
    present = [row for row in rows if row.sort_value(order.column) is not None]
    missing = [row for row in rows if row.sort_value(order.column) is None]
    present.sort(key=lambda row: row.sort_value(order.column), reverse=order.descending != reverse)
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
            current = self.highlighted_key
            self.visible_columns = visible
            self.clear(columns=True)
            self._shown.clear()
            self._add_columns()
            self.apply(self._rows, current)

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
    CPU runs spends no width on an empty column. The status column is as wide as the longest
    status its runs can reach (``running 999/1000``), so a live status never outgrows its cell."""

    COLUMNS = COLUMNS
    BINDINGS = [Binding("enter", "select_cursor", "Open", show=False)]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.marked: list[str] = []
        self._widths: dict[str, int | None] = {}
        self._with_devices = False

    def on_resize(self) -> None:
        self._fit(self._rows)

    def _fit(self, rows: Sequence[RunRow]) -> None:
        """Columns and widths for this width and these runs; the table is rebuilt only when they change."""
        self._with_devices = any(row.run.devices for row in rows)
        visible = self.fitted_columns()
        widths = self.fitted_widths(rows, visible)
        for key in NARROW_SPARED:
            if widths.get("name", NARROW_NAME) >= NARROW_NAME:
                break
            visible -= {key}
            widths = self.fitted_widths(rows, visible)
        if "name" in widths:
            widths["name"] = max(NARROW_NAME, widths["name"])
        if visible != self.visible_columns or widths != self._widths:
            self._widths = widths
            self._rows = rows
            self.show_columns(visible, force=True)

    def fitted_columns(self) -> frozenset[str]:
        """The columns this width and these runs call for."""
        shown = frozenset(key for key, _ in COLUMNS) - (set() if self._with_devices else {"devices"})
        return shown if self.outer_size.width >= WIDE else shown - NARROW_HIDDEN

    def fitted_widths(self, rows: Sequence[RunRow], visible: frozenset[str]) -> dict[str, int | None]:
        """Fixed widths: the status column's always; narrow, every column's, names taking the rest
        (maybe less than NARROW_NAME, which ``_fit`` then makes room for)."""
        status = max((status_room(row.run, row.now) for row in rows), default=0)
        widths: dict[str, int | None] = {"status": max(status, len("status"))}
        if self.outer_size.width >= WIDE:
            return widths
        for index, (key, label) in enumerate(COLUMNS):
            if key in visible and key not in widths and key != "name":
                widths[key] = max([len(label), *(cell_len(str(row.cells[index])) for row in rows)])
        scrollbar = SCROLLBAR if len(rows) > self.outer_size.height - 1 else 0  # more rows than fit below the header
        rest = self.outer_size.width - scrollbar - sum(width + CELL_PADDING for width in widths.values() if width)
        widths["name"] = min(NAME_MAX, rest - CELL_PADDING)
        return widths

    def apply(self, rows: Sequence[RunRow], current: str | None = None) -> None:
        """As LiveTable's, with the columns and their widths fitted to the runs first."""
        self._fit(rows)
        super().apply(rows, current)

    def column_width(self, key: str) -> int | None:
        return self._widths.get(key)

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
        """The first visible cell carries the mark of a marked run; a name wider than its column
        loses its middle."""
        cells = list(super().cells_of(row))
        mark = MARK if row.key in self.marked else ""
        name_width = self._widths.get("name")
        if name_width is not None:
            index = [key for key, _ in self.shown_columns].index("name")
            cells[index] = Text(elide_middle(str(cells[index]), name_width - (len(mark) if index == 0 else 0)))
        if mark:
            cells[0] = Text(mark + str(cells[0]), style="bold magenta")
        return tuple(cells)

    def clear_marks(self) -> None:
        self.unmark(list(self.marked))
