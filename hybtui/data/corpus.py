"""A retrieval corpus on disk: JSON lines of passages, too large to hold in memory.

Loading *scans* a corpus once — validating every line, finding the rows of the judged
passages, hashing the files (the corpus identity that keys embedding caches) — so bad
data is reported before a model loads; evaluation then streams it again in chunks
(`Corpus.texts`). Files may be gzipped; every problem is reported with its file and line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hybtui.data import sources
from hybtui.errors import HybtuiError


def passage_text(row: dict) -> str:
    """What the encoder sees of a passage: its title, then its text."""
    title = row.get("title") or ""
    return f"{title} {row['text']}" if title else row["text"]


@dataclass(frozen=True)
class Corpus:
    """A corpus on disk: its files in reading order and what the loading scan found."""

    files: tuple[Path, ...]
    #: the document id field of a line: "docid" (MIRACL) or "_id" (BEIR)
    id_field: str
    size: int
    #: sha256 over the files' sha256s, in order: the corpus identity
    sha256: str

    def texts(self, chunk: int) -> Iterator[list[str]]:
        """The passages' texts in corpus order, `chunk` at a time (one chunk in memory)."""
        batch: list[str] = []
        for _, row in jsonl_rows(self.files, (self.id_field, "text")):
            batch.append(passage_text(row))
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch


def text_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(location `PATH:LINE`, text) per non-blank line of a text or gzipped file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                where = f"{path}:{number}"
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise HybtuiError(f"{where}: not UTF-8 text: {exc}") from exc
                if line.strip():
                    yield where, line
    except FileNotFoundError as exc:
        raise HybtuiError(f"{path}: file not found") from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise HybtuiError(f"{path}: not a readable gzip file (truncated or corrupt?): {exc}") from exc
    except OSError as exc:
        raise HybtuiError(f"{path}: cannot be read: {exc}") from exc


def jsonl_rows(files: tuple[Path, ...], required: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """(location, object) per line, each checked to hold the `required` fields as strings
    (and an optional string `title`)."""
    for path in files:
        for where, line in text_lines(path):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HybtuiError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from exc
            if not isinstance(row, dict):
                raise HybtuiError(f"{where}: expected a JSON object with fields {', '.join(required)}")
            for name in required:
                value = row.get(name)
                if not isinstance(value, str) or (name != "text" and not value.strip()):
                    raise HybtuiError(f"{where}: field '{name}' is missing or not a non-empty string")
            if not isinstance(row.get("title", ""), str | None):
                raise HybtuiError(f"{where}: field 'title' must be a string")
            yield where, row


def scan_corpus(files: tuple[Path, ...], id_field: str, wanted: set[str]) -> tuple[Corpus, dict[str, int]]:
    """Validate every line, count the passages, hash the files, and find the row of each
    `wanted` document id (only those are kept: a corpus's ids may not fit in memory)."""
    rows: dict[str, int] = {}
    size = 0
    for size, (where, row) in enumerate(jsonl_rows(files, (id_field, "text")), start=1):
        if row[id_field] in wanted:
            if row[id_field] in rows:
                raise HybtuiError(f"{where}: document id {row[id_field]} appears twice in the corpus")
            rows[row[id_field]] = size - 1
    if size == 0:
        raise HybtuiError(f"{files[0].parent}: the corpus holds no passages")
    identity = hashlib.sha256("\n".join(sources.sha256_of(f) for f in files).encode()).hexdigest()
    return Corpus(files, id_field, size, identity), rows
