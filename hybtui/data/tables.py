"""Training sets backed by an Arrow table that Hugging Face `datasets` memory-maps.

The paper trains on about 520k parallel items per language, millions of pairs in all:
as Python objects they would not fit a laptop. A `TableSet` keeps the rows in the
table (on disk, paged in on demand) and holds only numpy indices: which table row
holds item i in language l (`rows`, -1 where the item lacks that language). The
samplers read `presence()` and draw item indices; texts are taken from the table for
the rows of the batch being built, nothing more.

Local files are converted once into Arrow files under `arrow_cache()`
(`$XDG_CACHE_HOME/hybtui/datasets`, default `~/.cache/hybtui/datasets`); hub datasets use
the Hugging Face cache, so a dataset other tools downloaded is reused.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from hybtui.data.sources import cache_root
from hybtui.errors import HybtuiError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

#: File extension → the `datasets` builder that reads it.
BUILDERS = {".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
#: Columns: (required, meaning). `hard_negatives` is a list of strings; the others are strings.
COLUMNS = {
    "item": (True, "the parallel item id, shared by the item's translations"),
    "dataset": (False, "the training set the row belongs to (default: the file stem)"),
    "lang": (True, "the language of this row's query and passage"),
    "query": (True, "the question"),
    "passage": (True, "the passage answering it"),
    "hard_negatives": (False, "passages in the same language that do not answer it"),
}

#: The version of the saved table indices (`check_columns`' rules and `group_table`'s
#: arrays): a change makes every table be checked and grouped again.
INDEX_VERSION = 1
#: Called when a table has a bad row: (row index, message without location) → raises.
RowError = Callable[[int | None, str], NoReturn]


def arrow_cache() -> Path:
    """Where local training files are kept as Arrow files (next to the benchmark cache)."""
    return cache_root().parent / "datasets"


class TableSet:
    """A named training set: items (parallel groups) over the rows of an Arrow table."""

    def __init__(self, name: str, table: pa.Table, item_ids: pa.Array, languages: tuple[str, ...], rows, units):
        self.name = name
        self.languages = languages
        self._table = table
        self._item_ids = item_ids
        #: item × language (in `languages` order) → table row, -1 where absent
        self.rows: np.ndarray = rows
        self._units: np.ndarray = units

    def __len__(self) -> int:
        return len(self.rows)

    def item_ids(self, indices: Sequence[int] | None = None) -> list[str]:
        ids = self._item_ids if indices is None else self._item_ids.take(np.asarray(indices, dtype=np.int64))
        return ids.to_pylist()

    def presence(self) -> np.ndarray:
        """item × language: whether the item exists in that language."""
        return self.rows >= 0

    def holdout_units(self) -> np.ndarray:
        """`holdout_units` of the item ids, computed with the table's index and saved with it."""
        return self._units

    def subset(self, keep: np.ndarray) -> TableSet:
        """The items where `keep` is true, in order, over the same table."""
        ids, rows, units = self._item_ids.filter(keep), self.rows[keep], self._units[keep]
        return TableSet(self.name, self._table, ids, self.languages, rows, units)

    def batch_texts(
        self, pairs: Sequence[tuple[int, str, str]], hard_negatives: int
    ) -> tuple[list[str], list[str], list[str]]:
        """(queries, passages, up to `hard_negatives` negatives per pair) of a batch's pairs."""
        code = {lang: c for c, lang in enumerate(self.languages)}
        items = [p[0] for p in pairs]
        queries = self._column("query", self.rows[items, [code[p[1]] for p in pairs]])
        passage_rows = self.rows[items, [code[p[2]] for p in pairs]]
        passages = self._column("passage", passage_rows)
        negatives = []
        if hard_negatives > 0 and "hard_negatives" in self._table.column_names:
            for listed in self._column("hard_negatives", passage_rows):
                negatives += (listed or [])[:hard_negatives]
        return queries, passages, negatives

    def texts_in(self, lang: str) -> list[tuple[str, str]]:
        """(query, passage) of every item in `lang`, in item order."""
        rows = self.rows[:, self.languages.index(lang)]
        rows = rows[rows >= 0]
        return list(zip(self._column("query", rows), self._column("passage", rows)))

    def _column(self, name: str, rows: np.ndarray) -> list:
        """The values of `name` in `rows`, one lookup each: a batch reads only its own rows
        (pyarrow's take on a chunked column would first join its chunks, copying the column)."""
        column = self._table.column(name)
        return [column[row].as_py() for row in rows.tolist()]


def holdout_units(item_ids: list[str]) -> np.ndarray:
    """A uniform number in [0, 1) per item, fixed by its id alone (validation holds out the
    items below its fraction): the id's 8-byte BLAKE2b digest as a big-endian integer over
    2**64. Dividing by a power of two is exact once the integer is rounded to a float, so
    each number is Python's correctly rounded int / int."""
    import hashlib

    digests = b"".join(hashlib.blake2b(item_id.encode(), digest_size=8).digest() for item_id in item_ids)
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2**64


def read_file(path: Path, split: str = "train") -> datasets.Dataset:
    """A local training file as a memory-mapped `datasets` table (converted once, cached)."""
    if path.suffix not in BUILDERS:
        raise HybtuiError(f"{path}: unknown file type '{path.suffix}'; training files are {', '.join(BUILDERS)}")
    if not path.is_file():
        raise HybtuiError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise HybtuiError(f"{path}: holds no training rows (the file is empty)")
    builder = BUILDERS[path.suffix]
    if builder == "parquet" and _parquet_rows(path) == 0:
        raise HybtuiError(f"{path}: holds no training rows")
    options = {}
    if builder == "csv":  # every column a string: ids such as "7" must not become numbers
        options = {"features": _csv_features(path), "keep_default_na": False}
    return load(builder, data_files=str(path), split=split, cache_dir=str(arrow_cache()), **options)


def _parquet_rows(path: Path) -> int | None:
    """The row count a Parquet footer gives (None for a file that is not Parquet: `datasets` says why)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException):
        return None


def _csv_features(path: Path):
    import datasets

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        lines = csv.reader(f)
        header = next(lines, [])
        if not any(filter(None, lines)):
            raise HybtuiError(f"{path}: holds no training rows (only a header)")
    return datasets.Features({name: datasets.Value("string") for name in header})


def load(*args, **kwargs) -> datasets.Dataset:
    """`datasets.load_dataset`, quietly: hybtui's commands print their own output."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets.load_dataset(*args, **kwargs)


def group_table(table: datasets.Dataset, default_dataset: str, fail: RowError) -> list[TableSet]:
    """The training sets of a checked table: rows grouped by `dataset`, then by `item`,
    each in the order of first appearance (as a reader of the file would list them).

    Checking and grouping read every row (most of the start-up at the paper's scale), so
    for a table read from Arrow files the result is saved under `arrow_cache()` and reused
    while those files are unchanged (`datasets` writes new ones when the source changes)."""
    saved = _index_path(table, default_dataset)
    if saved is not None and saved.exists():
        return _load_index(saved, table.data.table)
    check_columns(table, fail)
    sets = _group(table.data.table, default_dataset, fail)
    if saved is not None:
        _save_index(saved, sets)
    return sets


def _group(arrow: pa.Table, default_dataset: str, fail: RowError) -> list[TableSet]:
    """`group_table`'s work: one hash pass over the languages (and datasets), one over the
    items of each set; `rows` is filled by scattering row numbers to (item, language)."""
    import pyarrow.compute as pc

    if not arrow.num_rows:
        fail(None, "holds no training rows")
    lang_array, lang_codes = _codes(arrow["lang"])
    lang_names = lang_array.to_pylist()
    if "dataset" in arrow.column_names:
        names, dataset_codes = _codes(pc.fill_null(arrow["dataset"], default_dataset))
        dataset_names = names.to_pylist()
    else:
        dataset_names, dataset_codes = [default_dataset], None
    sets = []
    for d, name in enumerate(dataset_names):
        if len(dataset_names) > 1:
            members = np.flatnonzero(dataset_codes == d)
            item_ids, local = _codes(arrow["item"].take(members))
        else:  # one set: all rows, no copy of the item column
            members = np.arange(arrow.num_rows)
            item_ids, local = _codes(arrow["item"])
        member_langs = lang_codes[members]
        languages = tuple(sorted(lang_names[c] for c in np.flatnonzero(np.bincount(member_langs))))
        column = np.full(len(lang_names), -1, dtype=np.int64)
        column[[lang_names.index(lang) for lang in languages]] = np.arange(len(languages))
        rows = np.full((len(item_ids), len(languages)), -1, dtype=np.int64)
        keys = local * len(languages) + column[member_langs]
        rows.ravel()[keys] = members
        if np.count_nonzero(rows >= 0) < len(members):
            _duplicate(keys, members, local, item_ids, lang_names, member_langs, name, fail)
        sets.append(TableSet(name, arrow, item_ids, languages, rows, holdout_units(item_ids.to_pylist())))
    return sets


def _index_path(table: datasets.Dataset, default_dataset: str) -> Path | None:
    """Where the index of a table read from Arrow files is saved (None: not from files)."""
    import hashlib
    import json

    if not table.cache_files:
        return None
    files = sorted(f["filename"] for f in table.cache_files)
    key = json.dumps([INDEX_VERSION, default_dataset, [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]])
    return arrow_cache() / "index" / f"{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.npz"


def _save_index(path: Path, sets: list[TableSet]) -> None:
    """Written whole, then renamed: the ranks of a run may load the same table at once."""
    import json

    meta = json.dumps([[ts.name, ts.languages] for ts in sets])
    path.parent.mkdir(parents=True, exist_ok=True)
    unfinished = path.with_name(f"{path.stem}.{os.getpid()}.unfinished")
    arrays = {"meta": np.array(meta)}
    for i, ts in enumerate(sets):
        arrays[f"rows{i}"], arrays[f"units{i}"] = ts.rows, ts.holdout_units()
    with unfinished.open("wb") as f:
        np.savez(f, **arrays)
    os.replace(unfinished, path)


def _load_index(path: Path, arrow: pa.Table) -> list[TableSet]:
    """The sets a saved index describes; an item's id is read from its first row."""
    import json

    with np.load(path) as saved:
        meta = json.loads(str(saved["meta"]))
        sets = []
        for i, (name, languages) in enumerate(meta):
            rows = saved[f"rows{i}"]
            ids = arrow["item"].take(np.where(rows >= 0, rows, arrow.num_rows).min(axis=1)).combine_chunks()
            sets.append(TableSet(name, arrow, ids, tuple(languages), rows, saved[f"units{i}"]))
    return sets


def _codes(column) -> tuple:
    """(distinct values in order of first appearance, each row's index into them), in one
    hash pass: the chunks of an encoded column share the final dictionary."""
    import pyarrow as pa

    encoded = column.dictionary_encode()
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    return chunks[0].dictionary, codes.astype(np.int64)


def _duplicate(keys, members, local, item_ids, lang_names, lang_codes, dataset: str, fail: RowError) -> None:
    """Report the first row that repeats an (item, language) of its dataset."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    repeats = np.flatnonzero(ranked[1:] == ranked[:-1]) + 1
    at = order[repeats[np.argmin(order[repeats])]]
    first = members[order[np.searchsorted(ranked, keys[at])]]
    fail(
        int(members[at]),
        f"item '{item_ids[int(local[at])].as_py()}' in language '{lang_names[int(lang_codes[at])]}' "
        f"of dataset '{dataset}' already appeared at row {first + 1}",
    )


def check_columns(table: datasets.Dataset, fail: RowError) -> None:
    """Every column known, the required ones there, strings (lists of strings for
    `hard_negatives`), no value missing or blank."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrow = table.data.table
    unknown = [c for c in arrow.column_names if c not in COLUMNS]
    if unknown:
        fail(None, f"unknown column(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(COLUMNS)}")
    for name, (required, meaning) in COLUMNS.items():
        if name not in arrow.column_names:
            if required:
                fail(None, f"missing column '{name}' ({meaning})")
            continue
        column = arrow[name]
        if pa.types.is_null(column.type) and not required:
            continue
        if name == "hard_negatives":
            _check_negatives(column, fail)
            continue
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            fail(_first(pc.is_valid(column)), f"field '{name}' must be a string (got {column.type})")
        _check_text(column, name, f"missing field '{name}' ({meaning})" if required else None, fail)


def _check_text(column, name: str, missing: str | None, fail: RowError) -> None:
    """No value missing (when `missing` says why that is wrong), blank or not UTF-8; a
    block at a time, so a large column is never copied whole."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for start, chunk in _chunks(column):
        if missing and chunk.null_count:
            fail(start + _first(pc.is_null(chunk)), missing)
        try:
            blank = pc.equal(pc.utf8_trim_whitespace(chunk), "")
        except pa.ArrowInvalid:  # bytes that are not UTF-8 (pyarrow's readers let them through)
            values = chunk.cast(pa.binary()).to_pylist()
            fail(start + next(i for i, v in enumerate(values) if v and not _is_utf8(v)), f"field '{name}' is not UTF-8")
        if pc.any(blank).as_py():
            fail(start + _first(blank), f"field '{name}' is empty")


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_negatives(column, fail: RowError) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    message = "field 'hard_negatives' must be a list of non-empty strings"
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)) or not (
        pa.types.is_string(column.type.value_type) or pa.types.is_null(column.type.value_type)
    ):
        fail(_first(pc.is_valid(column)), message)
    for chunk_start, chunk in _chunks(column):
        values = pc.list_flatten(chunk)
        bad = pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_trim_whitespace(values), ""))
        bad = pc.fill_null(bad, True)
        if pc.any(bad).as_py():
            parents = pc.list_parent_indices(chunk).to_numpy()
            fail(chunk_start + int(parents[_first(bad)]), message)


def _chunks(column):
    start = 0
    for chunk in column.chunks:
        yield start, chunk
        start += len(chunk)


def _first(mask) -> int:
    """The index of the first true value of a boolean array (nulls as false)."""
    import pyarrow.compute as pc

    return int(pc.index(pc.fill_null(mask, False), True).as_py())
