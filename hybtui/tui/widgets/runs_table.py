"""The run list as a DataTable that takes whole snapshots and applies them in place."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable

from hybtui.tui.snapshot import RunRow

#: (column key, header); cells in RunRow follow this order.
COLUMNS = (("id", "id"), ("name", "name"), ("model", "model"), ("sampler", "sampler"), ("alpha", "α"),
           ("train", "train"), ("status", "status"), ("mono", "mono"), ("cross", "cross"),
           ("multi", "multi"), ("rank_distance", "rd"), ("age", "age"))


class RunsTable(DataTable):
    """Runs newest first. ``apply`` diffs a snapshot against what is shown: changed cells are
    updated, new runs added and gone ones removed, by run id, so the cursor stays on its run
    and nothing flickers."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: dict[str, RunRow] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def highlighted_run(self) -> str | None:
        """The id of the run under the cursor, if any."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def apply(self, rows: tuple[RunRow, ...]) -> None:
        """Show exactly ``rows``, in their order, changing only what differs."""
        current = self.highlighted_run
        wanted = {row.key: row for row in rows}
        for key in [key for key in self._shown if key not in wanted]:
            self.remove_row(key)
            del self._shown[key]
        for row in rows:
            old = self._shown.get(row.key)
            if old is None:
                self.add_row(*row.cells, key=row.key)
            elif old.cells != row.cells:
                for (column, _), before, after in zip(COLUMNS, old.cells, row.cells):
                    if before != after:
                        self.update_cell(row.key, column, after, update_width=True)
            self._shown[row.key] = row
        order = {row.key: index for index, row in enumerate(rows)}
        if [row.key for row in self.ordered_rows] != list(order):
            self.sort("id", key=order.__getitem__)
        if current in order:
            self.move_cursor(row=self.get_row_index(current), scroll=False)
