"""Parallel training data: the same QA pair in several languages, grouped by item.

The samplers need to know which languages each item exists in, so every source is
read into `TrainingSet`s of `ParallelItem`s. Sources are named by `--train` values,
comma-joined or repeated, in the `--eval` grammar extended by files and hub names:

    mlqa-r[:ar,de,...]   xquad-r[:...]   the LAReQA files (query = question,
                                         passage = the sentence holding the answer)
    PATH.jsonl | PATH.parquet | PATH.csv one row per (item, language), see `COLUMNS`
    hf:NAME[:SPLIT]      a Hugging Face `datasets` dataset (hub id or local path)
                         with those columns; SPLIT defaults to "train"

Rows: `item` (str), `dataset` (str, optional, default the file stem), `lang`, `query`,
`passage` (str) and `hard_negatives` (list of str, optional; not in CSV). Rows of one
file may belong to several datasets, giving several training sets. The LAReQA sets are
small and kept as Python objects (`TrainingSet`); files and hub datasets stay in Arrow
tables (`tables.TableSet`). Both offer what the samplers and the trainer read:
`languages`, `presence()`, `item_ids()`, `holdout_units()`, `subset()`, `batch_texts()`,
`texts_in()`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

import numpy as np

from hybtui.data import benchmarks, lareqa, tables
from hybtui.data.benchmarks import BenchmarkSelection
from hybtui.data.sources import DownloadProgress
from hybtui.data.tables import COLUMNS, TableSet
from hybtui.errors import HybtuiError

SOURCE_FORMS = "mlqa-r[:LANG,...], xquad-r[:LANG,...], PATH.jsonl, PATH.parquet, PATH.csv or hf:NAME[:SPLIT]"


@dataclass(frozen=True)
class ParallelItem:
    """One QA pair in every language it exists in."""

    item_id: str
    #: lang → (query, passage)
    texts: dict[str, tuple[str, str]]
    #: lang → passages of that language that are not the answer (may be empty)
    hard_negatives: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class TrainingSet:
    """A named training dataset; batches never mix two of them."""

    name: str
    items: tuple[ParallelItem, ...]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({lang for item in self.items for lang in item.texts}))

    def items_with(self, lang: str) -> tuple[int, ...]:
        """Indices of the items that exist in `lang`."""
        return tuple(i for i, item in enumerate(self.items) if lang in item.texts)

    def __len__(self) -> int:
        return len(self.items)

    def item_ids(self, indices: Sequence[int] | None = None) -> list[str]:
        return [self.items[i].item_id for i in (range(len(self.items)) if indices is None else indices)]

    def presence(self) -> np.ndarray:
        """item × language (in `languages` order): whether the item exists in that language."""
        column = {lang: c for c, lang in enumerate(self.languages)}
        has = np.zeros((len(self.items), len(column)), dtype=bool)
        for i, item in enumerate(self.items):
            has[i, [column[lang] for lang in item.texts]] = True
        return has

    def holdout_units(self) -> np.ndarray:
        """`tables.holdout_units` of the item ids."""
        return tables.holdout_units(self.item_ids())

    def subset(self, keep: np.ndarray) -> TrainingSet:
        """The items where `keep` is true, in order."""
        return TrainingSet(self.name, tuple(item for item, k in zip(self.items, keep.tolist()) if k))

    def batch_texts(
        self, pairs: Sequence[tuple[int, str, str]], hard_negatives: int
    ) -> tuple[list[str], list[str], list[str]]:
        """(queries, passages, up to `hard_negatives` negatives per pair) of a batch's pairs."""
        queries, passages, negatives = [], [], []
        for item, query_lang, passage_lang in pairs:
            texts = self.items[item].texts
            queries.append(texts[query_lang][0])
            passages.append(texts[passage_lang][1])
            negatives += self.items[item].hard_negatives.get(passage_lang, ())[:hard_negatives]
        return queries, passages, negatives

    def texts_in(self, lang: str) -> list[tuple[str, str]]:
        """(query, passage) of every item in `lang`, in item order."""
        return [item.texts[lang] for item in self.items if lang in item.texts]


@dataclass(frozen=True)
class HubSource:
    """`hf:NAME[:SPLIT]`: a Hugging Face dataset id or a local path `datasets` can read."""

    name: str
    split: str = "train"


TrainSource = BenchmarkSelection | Path | HubSource
#: A training set as the samplers and the trainer see it.
TrainingData = TrainingSet | TableSet


def parse_train_spec(specs: str | Iterable[str]) -> list[TrainSource]:
    """Parse `--train` values into sources, in the order given.

    LAReQA tokens follow the `--eval` grammar (parsed by it); a file path or an
    `hf:` token is a source of its own and ends the language list before it.
    """
    tokens = [t.strip() for spec in ([specs] if isinstance(specs, str) else specs) for t in spec.split(",")]
    sources: list[TrainSource | str] = []  # a str is a LAReQA benchmark, resolved below
    lareqa_tokens: list[str] = []
    chosen: set[str] = set()
    in_benchmark = False
    for token in filter(None, tokens):
        name, colon, _ = token.partition(":")
        if name == "hf":
            hub_name, _, split = token[3:].partition(":")
            if not hub_name:
                raise HybtuiError(f"'{token}' names no dataset; write hf:NAME[:SPLIT]")
            sources.append(HubSource(hub_name, split or "train"))
            in_benchmark = False
        elif not colon and Path(token).suffix:
            path = Path(token).expanduser()
            if path.suffix not in tables.BUILDERS:
                raise HybtuiError(
                    f"{token}: unknown file type '{path.suffix}'; training files are {', '.join(tables.BUILDERS)}"
                )
            sources.append(path)
            in_benchmark = False
        elif colon or name in benchmarks.LANGUAGES:
            if name not in benchmarks.LANGUAGES:
                raise HybtuiError(f"unknown training source '{token}'; expected {SOURCE_FORMS}")
            if name in chosen:
                raise HybtuiError(f"benchmark '{name}' is selected twice in --train")
            chosen.add(name)
            sources.append(name)
            lareqa_tokens.append(token)
            in_benchmark = True
        elif in_benchmark:
            lareqa_tokens.append(token)
        else:
            raise HybtuiError(f"unknown training source '{token}'; expected {SOURCE_FORMS}")
    if not sources:
        raise HybtuiError(f"--train names no training data; expected {SOURCE_FORMS}")
    selected = {s.name: s for s in benchmarks.parse_eval_spec(lareqa_tokens)} if lareqa_tokens else {}
    return [selected[s] if isinstance(s, str) else s for s in sources]


def load_training_sets(
    specs: list[str], data_dir: Path | None, *, allow_download: bool = True, progress: DownloadProgress | None = None
) -> list[TrainingData]:
    """Every training set the `--train` values name, with unique names, in order."""
    sets: list[TrainingData] = []
    origin: dict[str, str] = {}
    for source in parse_train_spec(specs):
        if isinstance(source, BenchmarkSelection):
            bench = benchmarks.load(source, data_dir, allow_download=allow_download, progress=progress)
            loaded, where = [_from_benchmark(bench)], str(source)
        elif isinstance(source, Path):
            loaded, where = _from_file(source), str(source)
        else:
            loaded, where = _from_hub(source), f"hf:{source.name}"
        for ts in loaded:
            if ts.name in origin:
                raise HybtuiError(
                    f"training set name '{ts.name}' comes from both {origin[ts.name]} and {where}; "
                    'batch records name the set, so give the rows distinct "dataset" values'
                )
            origin[ts.name] = where
            sets.append(ts)
    return sets


def _from_benchmark(bench: lareqa.Benchmark) -> TrainingSet:
    texts: dict[str, dict[str, tuple[str, str]]] = {}
    for lang, split in bench.splits.items():
        for qid, query, answer in zip(split.query_ids, split.queries, split.answer.tolist()):
            texts.setdefault(qid, {})[lang] = (query, split.candidates[answer])
    return TrainingSet(bench.name, tuple(ParallelItem(qid, t, {}) for qid, t in texts.items()))


def _from_file(path: Path) -> list[TableSet]:
    """A JSONL, Parquet or CSV file through `datasets`. A bad JSONL file is read again
    line by line to name the first bad line, as a user editing it would look for it."""
    jsonl = path.suffix == ".jsonl"
    try:
        table = tables.read_file(path)
    except HybtuiError:
        raise
    except Exception as exc:  # datasets and pyarrow raise many types for a malformed file
        if jsonl:
            _diagnose_jsonl(path)
        raise HybtuiError(f"{path}: cannot be read as a {path.suffix[1:]} file ({type(exc).__name__}: {exc})") from exc
    return tables.group_table(table, path.stem, partial(_fail_jsonl, path) if jsonl else partial(_fail_at, str(path)))


def _fail_at(where: str, row: int | None, message: str) -> NoReturn:
    raise HybtuiError(f"{where}{'' if row is None else f' row {row + 1}'}: {message}")


def _fail_jsonl(path: Path, row: int | None, message: str) -> NoReturn:
    _diagnose_jsonl(path)
    _fail_at(str(path), row, message)


def _diagnose_jsonl(path: Path) -> None:
    """Raise the first problem of a JSONL file, named `PATH:LINE` (returns if none is found)."""
    first_seen: dict[tuple[str, str, str], str] = {}
    for location, row in _jsonl_rows(path):
        item_id, lang, dataset = _check_row(location, row, path.stem)
        key = (dataset, item_id, lang)
        if key in first_seen:
            raise HybtuiError(
                f"{location}: item '{item_id}' in language '{lang}' of dataset '{dataset}' "
                f"already appeared at {first_seen[key]}"
            )
        first_seen[key] = location
    if not first_seen:
        raise HybtuiError(f"{path}: holds no training rows")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, object]]:
    """(location, parsed row) per non-blank line; locations read `PATH:LINE`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise HybtuiError(f"{path}: file not found") from exc
    except OSError as exc:
        raise HybtuiError(f"{path}: cannot be read: {exc}") from exc
    for number, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HybtuiError(f"{where}: not UTF-8 text: {exc}") from exc
        if not line.strip():
            continue
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise HybtuiError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from exc


def _from_hub(source: HubSource) -> list[TableSet]:
    """`hf:NAME[:SPLIT]`: a local file or folder `datasets` reads, else a hub dataset
    (which needs a network connection or a copy in the Hugging Face cache)."""
    local = Path(source.name).expanduser()
    where = f"hf:{source.name}"
    try:
        if local.is_file():
            table = tables.read_file(local, source.split)
        else:
            table = tables.load(source.name, split=source.split)
    except Exception as exc:  # datasets raises many types: offline, unknown name, missing split, bad files
        raise HybtuiError(
            f"{where}: could not load split '{source.split}' ({type(exc).__name__}: {exc}); "
            "hub datasets need a network connection or a copy in the Hugging Face cache"
        ) from exc
    return tables.group_table(table, local.stem if local.is_file() else source.name, partial(_fail_at, where))


def _check_row(location: str, row: object, default_dataset: str) -> tuple[str, str, str]:
    """(item, lang, dataset) of a valid JSONL row."""
    if not isinstance(row, dict):
        raise HybtuiError(f"{location}: expected a JSON object with fields {', '.join(COLUMNS)}")
    unknown = [k for k in row if k not in COLUMNS]
    if unknown:
        raise HybtuiError(
            f"{location}: unknown field(s) {', '.join(repr(k) for k in unknown)}; allowed: {', '.join(COLUMNS)}"
        )
    for name, (required, meaning) in COLUMNS.items():
        if name not in row:
            if required:
                raise HybtuiError(f"{location}: missing field '{name}' ({meaning})")
            continue
        value = row[name]
        if name == "hard_negatives":
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise HybtuiError(f"{location}: field 'hard_negatives' must be a list of non-empty strings")
        elif not isinstance(value, str):
            raise HybtuiError(f"{location}: field '{name}' must be a string (got {type(value).__name__})")
        elif not value.strip():
            raise HybtuiError(f"{location}: field '{name}' is empty")
    return row["item"], row["lang"], row.get("dataset", default_dataset)


def split_validation(ts: TrainingData, fraction: float) -> tuple[TrainingData, TrainingData]:
    """(training, validation): an item is held out, with all its translations, when the
    hash of its id falls below `fraction`.

    The choice depends on the item id only: not on order, seed or the other items, so
    the same id is held out of every training set containing it, and a larger fraction
    holds out a superset. Both parts keep the set's name.
    """
    if not 0.0 <= fraction < 1.0:
        raise HybtuiError(f"validation fraction must be within [0, 1) (got {fraction})")
    held = ts.holdout_units() < fraction
    if held.all():
        raise HybtuiError(f"validation fraction {fraction} holds out all {len(ts)} items of '{ts.name}'; lower it")
    return ts.subset(~held), ts.subset(held)
