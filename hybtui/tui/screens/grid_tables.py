"""Every table of a grid's report.md as the app shows it: Table 1, hybrid's deltas, mAP by
seen / unseen languages, the per-language figures and the runs. Built from the report's
figures (reporting/grid_report.build_report), so the app and the file never disagree."""

from __future__ import annotations

from typing import Any, NamedTuple

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from hybtui import inert
from hybtui.formatting import figure, human_duration
from hybtui.reporting.grid_report import SEEN_GROUPS, TABLE1, language_label
from hybtui.results import SETTINGS
from hybtui.tui.viewmodels import STATUS_STYLES

#: Table 1 headings where a decrease is the improvement.
LOWER_IS_BETTER = frozenset({"rank distance"})
HEADINGS = tuple(heading for _, _, heading in TABLE1)
#: Rules under the header only: the tables fit 80 columns, in the theme's own colours.
TABLE_STYLE = {"box": box.SIMPLE_HEAD, "header_style": "bold"}


class GridRow(NamedTuple):
    """One line of a live table of grids or of a grid's runs, keyed by grid or run id."""

    key: str
    cells: tuple[str | Text, ...]


def _title(text: str) -> Text:
    return inert.text(text, style="table.title")


def _titled(title: str, *headers: str) -> Table:
    """A table at least as wide as its title where the screen allows: a narrow table would
    wrap its title into a column of words."""
    return Table(*headers, title=_title(title), min_width=cell_len(title) + 2, **TABLE_STYLE)


def table1(bench: str, figures: dict[str, Any]) -> Table:
    """The paper's Table 1 for one benchmark: a row per sampler, mean ± sd over seeds."""
    table = Table("sampler", *HEADINGS, title=_title(f"{bench}: Table 1 (mean ± sd over seeds)"), **TABLE_STYLE)
    for label, row in figures["table1"].items():
        table.add_row(inert.text(label), *(figure(row[h]["mean"], h, row[h]["sd"]) for h in HEADINGS))
    return table


def _delta(value: float | None, heading: str) -> Text:
    """A signed delta, green where hybrid is better, red where it is worse."""
    style = ""
    if value:
        style = "green" if (value < 0) == (heading in LOWER_IS_BETTER) else "red"
    return Text(figure(value, heading, signed=True), style=style)


def deltas_table(figures: dict[str, Any]) -> Table:
    """Hybrid's mean minus each other sampler's, per Table 1 column."""
    table = Table(
        "hybrid − other",
        *HEADINGS,
        title="hybrid against each other sampler (rank distance: lower is better)",
        **TABLE_STYLE,
    )
    for name, row in figures["deltas"].items():
        table.add_row(inert.text(name), *(_delta(row[h], h) for h in HEADINGS))
    return table


def seen_table(bench: str, figures: dict[str, Any]) -> Table | None:
    """mAP averaged over languages seen in training, unseen ones and (cross) mixed pairs, as
    report.md has it; only the columns some sampler has a figure for (None: no such figure)."""
    groups = figures["seen_groups"]
    columns = [
        (group, setting)
        for group in SEEN_GROUPS
        for setting in SETTINGS
        if any(row[group][setting] is not None for row in groups.values())
    ]
    if not columns:
        return None
    table = _titled(
        f"{bench}: mAP by whether training saw the languages (cross: mixed = one of the two)",
        "sampler",
        *(f"{group}\n{setting}" for group, setting in columns),
    )
    for label, row in groups.items():
        table.add_row(inert.text(label), *(figure(row[group][setting], "map") for group, setting in columns))
    return table


def languages_table(bench: str, figures: dict[str, Any]) -> Table:
    """Per query language, each sampler's multi mAP / rank distance (report.md's last table)."""
    table = _titled(f"{bench}: multi mAP / rank distance per query language († unseen, ‡ low-resource)", "language")
    for label in figures["table1"]:
        table.add_column(inert.text(label))
    for lang, info in figures["languages"].items():
        table.add_row(
            inert.text(language_label(lang, info)),
            *(
                f"{figure(s['multi mAP'], 'map')} / {figure(s['rank distance'], 'rank')}"
                for s in info["samplers"].values()
            ),
        )
    return table


def run_rows(rep: dict[str, Any]) -> tuple[GridRow, ...]:
    """Every run of the grid: its cell (sampler, seed), status, id and wall time."""
    return tuple(
        GridRow(
            run["run_id"],
            (
                inert.text(run["label"]),
                inert.text(run["seed"]),
                inert.text(run["status"], style=STATUS_STYLES.get(run["status"], "")),
                inert.text(run["run_id"]),
                human_duration(run["wall_s"]) if run["wall_s"] else "",
            ),
        )
        for run in rep["runs"]
    )


def summary(rep: dict[str, Any], done: bool, report: str | None) -> Text:
    """What the grid trains and evaluates, how far it is, how long its runs took and, once it
    has ended, where its report.md is or why it is not (stored text: inert)."""
    opts = rep["options"]
    finished = sum(1 for run in rep["runs"] if run["status"] == "finished")
    walls = [run["wall_s"] for run in rep["runs"] if run["wall_s"]]
    took = f" Run time {sum(walls) / 60:.1f} min." if walls else ""
    return inert.text(
        f"{rep['name']}: {opts['model']} on {' '.join(opts['train'])}, {opts['steps']} steps × batch "
        f"{opts['batch_size']}, seeds {', '.join(map(str, opts['seeds']))}; eval {' '.join(opts['eval'])}. "
        f"{finished}/{len(rep['runs'])} runs finished"
        + ("." if done else ", refreshing…")
        + took
        + (f" {report}" if report else "")
    )
