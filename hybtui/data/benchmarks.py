"""The evaluation benchmarks by name, and the `--eval` selection grammar.

`--eval xquad-r:en,de,mlqa-r` selects two benchmarks: XQuAD-R in en and de, MLQA-R in
all its languages. A token with a colon or a benchmark name starts a benchmark; other
tokens are further languages of the current one. `--eval` may also be repeated.
`miracl[:LANG,...]` selects MIRACL (monolingual retrieval over each language's corpus);
`beir:PATH[:LANG,...]` a BEIR-style folder (see hybtui.data.miracl for both layouts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hybtui.data import lareqa, miracl
from hybtui.data.sources import DownloadProgress
from hybtui.errors import HybtuiError

#: the pinned, checksummed benchmarks (what `data fetch` / `data verify` cover)
LANGUAGES = dict(lareqa.LANGUAGES)
#: every benchmark name `--eval` accepts, with its languages (None: given by the folder)
EVAL_LANGUAGES: dict[str, tuple[str, ...] | None] = {**LANGUAGES, miracl.NAME: miracl.LANGUAGES, miracl.BEIR: None}
AVAILABLE = ", ".join(LANGUAGES) + f", {miracl.NAME}, {miracl.BEIR}:PATH"


@dataclass(frozen=True)
class BenchmarkSelection:
    name: str
    #: None means every language of the benchmark
    languages: tuple[str, ...] | None = None
    #: the folder of a `beir:PATH` selection
    path: str | None = None

    def __str__(self) -> str:
        return ":".join(
            [self.name] + ([self.path] if self.path else []) + ([",".join(self.languages)] if self.languages else [])
        )


def parse_eval_spec(specs: str | Iterable[str]) -> list[BenchmarkSelection]:
    """Parse one or several `--eval` values into validated selections."""
    tokens = [t.strip() for spec in ([specs] if isinstance(specs, str) else specs) for t in spec.split(",")]
    chosen: dict[tuple[str, str | None], list[str] | None] = {}
    current: tuple[str, str | None] | None = None
    for token in tokens:
        name, colon, first = token.partition(":")
        if colon or name in EVAL_LANGUAGES:
            if name not in EVAL_LANGUAGES:
                raise HybtuiError(f"unknown benchmark '{name}'; available: {AVAILABLE}")
            path = None
            if name == miracl.BEIR:  # beir:PATH[:LANG]
                path, colon, first = first.partition(":")
                if not path:
                    raise HybtuiError(f"'{token}' names no folder; write {miracl.BEIR}:PATH[:LANG,...]")
            current = (name, path)
            if current in chosen:
                raise HybtuiError(f"benchmark '{':'.join(filter(None, current))}' is selected twice in --eval")
            chosen[current] = [first] if first else ([] if colon else None)
        elif current is None:
            raise HybtuiError(f"unknown benchmark '{token}'; available: {AVAILABLE}")
        elif token:
            if chosen[current] is None:
                start = ":".join(filter(None, current))
                raise HybtuiError(
                    f"'{token}' follows '{start}', which selects all its languages; "
                    f"write {start}:LANG,LANG to choose languages"
                )
            chosen[current].append(token)
    if not chosen:
        raise HybtuiError(f"no benchmark selected; available: {AVAILABLE}")
    return [BenchmarkSelection(name, _languages(name, path, langs), path) for (name, path), langs in chosen.items()]


def _languages(name: str, path: str | None, langs: list[str] | None) -> tuple[str, ...] | None:
    """A validated language selection; BEIR folders are checked when they are loaded."""
    if langs is None:
        return None
    if name == miracl.BEIR:
        if not langs:
            raise HybtuiError(f"{name}:{path}: empty language list")
        return tuple(dict.fromkeys(langs))
    if name == miracl.NAME:
        return lareqa.check_languages(name, langs, miracl.LANGUAGES)
    return lareqa.select_languages(name, langs)


def load(
    selection: BenchmarkSelection,
    data_dir: Path | None,
    *,
    allow_download: bool = True,
    progress: DownloadProgress | None = None,
) -> lareqa.Benchmark | miracl.CorpusBenchmark:
    """Load a selection: LAReQA's parallel benchmarks, or a corpus benchmark (MIRACL, BEIR)."""
    languages = list(selection.languages) if selection.languages else None
    if selection.name == miracl.NAME:
        return miracl.load(languages, data_dir, allow_download=allow_download)
    if selection.name == miracl.BEIR:
        return miracl.load_beir(selection.path, languages)
    return lareqa.load(selection.name, languages, data_dir, allow_download=allow_download, progress=progress)
