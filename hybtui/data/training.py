"""Parallel training data: the same QA pair in several languages, grouped by item.

The samplers need to know which languages each item exists in, so every source is
read into `TrainingSet`s of `ParallelItem`s. Sources are named by `--train` values,
comma-joined or repeated, in the `--eval` grammar extended by files and hub names:

    mlqa-r[:ar,de,...]   xquad-r[:...]   the LAReQA files (query = question,
                                         passage = the sentence holding the answer)
    PATH.jsonl           one JSON object per (item, language), see `JSONL_FIELDS`
    hf:NAME[:SPLIT]      a Hugging Face `datasets` dataset (hub id or local path)
                         with the JSONL columns; SPLIT defaults to "train"

JSONL rows: `{"item": str, "dataset": str (optional, default the file stem),
"lang": str, "query": str, "passage": str, "hard_negatives": [str, ...] (optional)}`.
Rows of one file may belong to several datasets, giving several training sets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hybtui.data import benchmarks, lareqa
from hybtui.data.benchmarks import BenchmarkSelection
from hybtui.data.sources import DownloadProgress
from hybtui.errors import HybtuiError

#: Field → (required, meaning) of a JSONL row or a hub dataset column.
JSONL_FIELDS = {
    "item": (True, "the parallel item id, shared by the item's translations"),
    "dataset": (False, "the training set the row belongs to (default: the file stem)"),
    "lang": (True, "the language of this row's query and passage"),
    "query": (True, "the question"),
    "passage": (True, "the passage answering it"),
    "hard_negatives": (False, "passages in the same language that do not answer it"),
}
SOURCE_FORMS = "mlqa-r[:LANG,...], xquad-r[:LANG,...], PATH.jsonl or hf:NAME[:SPLIT]"


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


@dataclass(frozen=True)
class HubSource:
    """`hf:NAME[:SPLIT]`: a Hugging Face dataset id or a local path `datasets` can read."""

    name: str
    split: str = "train"


TrainSource = BenchmarkSelection | Path | HubSource


def parse_train_spec(specs: str | Iterable[str]) -> list[TrainSource]:
    """Parse `--train` values into sources, in the order given.

    LAReQA tokens follow the `--eval` grammar (parsed by it); a `.jsonl` path or an
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
        elif token.endswith(".jsonl"):
            sources.append(Path(token).expanduser())
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
) -> list[TrainingSet]:
    """Every training set the `--train` values name, with unique names, in order."""
    sets: list[TrainingSet] = []
    origin: dict[str, str] = {}
    for source in parse_train_spec(specs):
        if isinstance(source, BenchmarkSelection):
            bench = benchmarks.load(source, data_dir, allow_download=allow_download, progress=progress)
            loaded, where = [_from_benchmark(bench)], str(source)
        elif isinstance(source, Path):
            loaded, where = _from_rows(_jsonl_rows(source), source.stem, str(source)), str(source)
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


def _from_hub(source: HubSource) -> list[TrainingSet]:
    try:
        import datasets  # optional and heavy: only hf: sources need it
    except ImportError as exc:
        raise HybtuiError(f"hf:{source.name} needs the Hugging Face `datasets` package (pip install datasets)") from exc
    local = Path(source.name).expanduser()
    try:
        if local.is_file():
            rows = datasets.load_dataset("json", data_files=str(local), split=source.split)
        else:
            rows = datasets.load_dataset(source.name, split=source.split)
    except Exception as exc:  # datasets raises many types: offline, unknown name, missing split, bad files
        raise HybtuiError(
            f"hf:{source.name}: could not load split '{source.split}' ({type(exc).__name__}: {exc}); "
            "hub datasets need a network connection or a copy in the Hugging Face cache"
        ) from exc
    default = local.stem if local.is_file() else source.name
    # Columns absent from a row come back as None; treat them as absent.
    cleaned = ({k: v for k, v in row.items() if v is not None} for row in rows)
    return _from_rows(
        ((f"hf:{source.name} row {i}", row) for i, row in enumerate(cleaned, start=1)), default, f"hf:{source.name}"
    )


def _from_rows(rows: Iterable[tuple[str, object]], default_dataset: str, where: str) -> list[TrainingSet]:
    """Group validated rows into training sets (by `dataset`) of items (by `item`)."""
    grouped: dict[str, dict[str, ParallelItem]] = {}
    first_seen: dict[tuple[str, str, str], str] = {}
    for location, row in rows:
        item_id, lang, query, passage, dataset, negatives = _check_row(location, row, default_dataset)
        key = (dataset, item_id, lang)
        if key in first_seen:
            raise HybtuiError(
                f"{location}: item '{item_id}' in language '{lang}' of dataset '{dataset}' "
                f"already appeared at {first_seen[key]}"
            )
        first_seen[key] = location
        item = grouped.setdefault(dataset, {}).setdefault(item_id, ParallelItem(item_id, {}, {}))
        item.texts[lang] = (query, passage)
        if negatives:
            item.hard_negatives[lang] = negatives
    if not grouped:
        raise HybtuiError(f"{where}: holds no training rows")
    return [TrainingSet(name, tuple(items.values())) for name, items in grouped.items()]


def _check_row(location: str, row: object, default_dataset: str) -> tuple[str, str, str, str, str, tuple[str, ...]]:
    if not isinstance(row, dict):
        raise HybtuiError(f"{location}: expected a JSON object with fields {', '.join(JSONL_FIELDS)}")
    unknown = [k for k in row if k not in JSONL_FIELDS]
    if unknown:
        raise HybtuiError(
            f"{location}: unknown field(s) {', '.join(repr(k) for k in unknown)}; allowed: {', '.join(JSONL_FIELDS)}"
        )
    for name, (required, meaning) in JSONL_FIELDS.items():
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
    return (
        row["item"],
        row["lang"],
        row["query"],
        row["passage"],
        row.get("dataset", default_dataset),
        tuple(row.get("hard_negatives", ())),
    )


def _hash_unit(item_id: str) -> float:
    """A uniform number in [0, 1) fixed by the item id alone."""
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "big") / 2**64


def split_validation(ts: TrainingSet, fraction: float) -> tuple[TrainingSet, TrainingSet]:
    """(training, validation): an item is held out, with all its translations, when the
    hash of its id falls below `fraction`.

    The choice depends on the item id only: not on order, seed or the other items, so
    the same id is held out of every training set containing it, and a larger fraction
    holds out a superset. Both parts keep the set's name.
    """
    if not 0.0 <= fraction < 1.0:
        raise HybtuiError(f"validation fraction must be within [0, 1) (got {fraction})")
    held = [_hash_unit(item.item_id) < fraction for item in ts.items]
    train = tuple(item for item, h in zip(ts.items, held) if not h)
    if not train:
        raise HybtuiError(
            f"validation fraction {fraction} holds out all {len(ts.items)} items of '{ts.name}'; lower it"
        )
    return TrainingSet(ts.name, train), TrainingSet(ts.name, tuple(item for item, h in zip(ts.items, held) if h))
