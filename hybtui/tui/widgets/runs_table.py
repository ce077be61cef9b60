"""The run list as a DataTable that takes whole snapshots and applies them in place,
with a marked subset of runs (for comparison)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from hybtui.tui.snapshot import RunRow

#: (column key, header); cells in RunRow follow this order.
COLUMNS = (("id", "id"), ("name", "name"), ("model", "model"), ("sampler", "sampler"), ("alpha", "α"),
           ("train", "train"), ("status", "status"), ("mono", "mono"), ("cross", "cross"),
           ("multi", "multi"), ("rank_distance", "rd"), ("age", "age"))
#: Shown before the id of a marked run.
MARK = "▶ "


class RunsTable(DataTable):
    """Runs newest first. ``apply`` diffs a snapshot against what is shown: changed cells are
    updated, new runs added and gone ones removed, by run id, so the cursor stays on its run
    and nothing flickers. ``marked`` holds run ids in the order they were marked; marks
    outlive the filter hiding their runs."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: dict[str, tuple] = {}
        self.marked: list[str] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def highlighted_run(self) -> str | None:
        """The id of the run under the cursor, if any."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def toggle_mark(self, run_id: str) -> None:
        """Mark the run, or unmark it, and show that in its id cell."""
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        id_cell = self._id_cell(run_id)
        self.update_cell(run_id, "id", id_cell, update_width=True)
        self._shown[run_id] = (id_cell, *self._shown[run_id][1:])

    def _id_cell(self, run_id: str) -> str | Text:
        return Text(MARK + run_id, style="bold magenta") if run_id in self.marked else run_id

    def apply(self, rows: tuple[RunRow, ...]) -> None:
        """Show exactly ``rows``, in their order, changing only what differs."""
        current = self.highlighted_run
        wanted = {row.key for row in rows}
        for key in [key for key in self._shown if key not in wanted]:
            self.remove_row(key)
            del self._shown[key]
        for row in rows:
            cells = (self._id_cell(row.key), *row.cells[1:])
            old = self._shown.get(row.key)
            if old is None:
                self.add_row(*cells, key=row.key)
            elif old != cells:
                for (column, _), before, after in zip(COLUMNS, old, cells):
                    if before != after:
                        self.update_cell(row.key, column, after, update_width=True)
            self._shown[row.key] = cells
        order = {row.key: index for index, row in enumerate(rows)}
        if [row.key for row in self.ordered_rows] != list(order):
            self.sort("id", key=order.__getitem__)
        if current in order:
            self.move_cursor(row=self.get_row_index(current), scroll=False)
