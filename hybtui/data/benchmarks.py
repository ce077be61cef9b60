"""The evaluation benchmarks by name, and the `--eval` selection grammar.

`--eval xquad-r:en,de,mlqa-r` selects two benchmarks: XQuAD-R in en and de, MLQA-R in
all its languages. A token with a colon or a benchmark name starts a benchmark; other
tokens are further languages of the current one. `--eval` may also be repeated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hybtui.data import lareqa
from hybtui.data.sources import DownloadProgress
from hybtui.errors import HybtuiError

LANGUAGES = dict(lareqa.LANGUAGES)


@dataclass(frozen=True)
class BenchmarkSelection:
    name: str
    #: None means every language of the benchmark
    languages: tuple[str, ...] | None = None

    def __str__(self) -> str:
        return self.name + (":" + ",".join(self.languages) if self.languages else "")


def parse_eval_spec(specs: str | Iterable[str]) -> list[BenchmarkSelection]:
    """Parse one or several `--eval` values into validated selections."""
    tokens = [t.strip() for spec in ([specs] if isinstance(specs, str) else specs) for t in spec.split(",")]
    chosen: dict[str, list[str] | None] = {}
    current: str | None = None
    for token in tokens:
        name, colon, first = token.partition(":")
        if colon or name in LANGUAGES:
            if name not in LANGUAGES:
                raise HybtuiError(f"unknown benchmark '{name}'; available: {', '.join(LANGUAGES)}")
            if name in chosen:
                raise HybtuiError(f"benchmark '{name}' is selected twice in --eval")
            current = name
            chosen[name] = [first] if first else ([] if colon else None)
        elif current is None:
            raise HybtuiError(f"unknown benchmark '{token}'; available: {', '.join(LANGUAGES)}")
        elif token:
            if chosen[current] is None:
                raise HybtuiError(
                    f"'{token}' follows '{current}', which selects all its languages; "
                    f"write {current}:LANG,LANG to choose languages"
                )
            chosen[current].append(token)
    if not chosen:
        raise HybtuiError(f"no benchmark selected; available: {', '.join(LANGUAGES)}")
    return [
        BenchmarkSelection(name, None if langs is None else lareqa.select_languages(name, langs))
        for name, langs in chosen.items()
    ]


def load(
    selection: BenchmarkSelection,
    data_dir: Path | None,
    *,
    allow_download: bool = True,
    progress: DownloadProgress | None = None,
) -> lareqa.Benchmark:
    return lareqa.load(
        selection.name,
        list(selection.languages) if selection.languages else None,
        data_dir,
        allow_download=allow_download,
        progress=progress,
    )
