"""Grids in the store: sets of runs launched together (`hybtui reproduce`) to be reported
together. ``spec`` is JSON: the grid's options and its cells, each naming its run id.

`Store` gets these methods from `GridRecords`; they need its write transaction
(``_write``), its reads (``_rows``, ``_by_id``) and its ``path``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hybtui.errors import HybtuiError
from hybtui.runs.database import new_id


class GridRecords:
    """The grids table's side of the store (mixed into `Store`)."""

    def create_grid(self, name: str, spec: dict[str, Any]) -> str:
        """Record a grid of already created runs; returns its id (``grids/<id>/`` holds its report)."""
        with self._write() as db:
            grid_id = new_id(db, "grids")
            db.table("grids").insert(
                {"id": grid_id, "name": name, "created_at": time.time(), "spec": _strict_json(spec, f"grid {name}")}
            )
        return grid_id

    def get_grid(self, grid_id: str) -> dict[str, Any]:
        """The grid with this id or unique id prefix; ``spec`` decoded."""
        row = self._by_id("grids", grid_id, "grid", "hybtui grids ls")
        return {**row, "spec": json.loads(row["spec"])}

    def list_grids(self) -> list[dict[str, Any]]:
        """Grids, newest first; ``spec`` decoded."""
        return [
            {**row, "spec": json.loads(row["spec"])}
            for row in self._rows("SELECT * FROM grids ORDER BY created_at DESC, id DESC")
        ]

    def grid_dir(self, grid_id: str) -> Path:
        """``grids/<id>/``: where the grid's report is written."""
        return self.path / "grids" / self.get_grid(grid_id)["id"]


def _strict_json(data: Any, what: str) -> str:
    """JSON that SQLite's JSON functions accept: NaN and infinities are refused."""
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError as exc:
        raise HybtuiError(f"{what}: cannot store a value that is not a finite number ({exc})") from exc
