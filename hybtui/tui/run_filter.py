"""The run list's filter: free words match a run's name, model, sampler, status or devices;
``field:value`` terms (``status:running``, ``sampler:hybrid``, ``model:me5``, ``lang:th``) match
that field only (a language whole). Every term must match; case does not matter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hybtui.tui.viewmodels import RunRow

#: The fields a term may name, as the filter's hint lists them.
FIELDS = ("status", "sampler", "model", "lang")
TERMS = " ".join(f"{field}:" for field in FIELDS)
HINT = f"fields: {TERMS}"
#: Fields whose value must be one of the field's words (``lang:h`` matches no language).
WHOLE_WORDS = frozenset({"lang"})


@dataclass(frozen=True)
class RunFilter:
    """A parsed filter: free words, and (field, value) terms. A word with a colon that names no
    field (``mlqa-r:en``) is a free word: run names may hold colons."""

    words: tuple[str, ...] = ()
    terms: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> RunFilter:
        words, terms = [], []
        for word in text.lower().split():
            field, colon, value = word.partition(":")
            if colon and field in FIELDS:
                terms.append((field, value))
            else:
                words.append(word)
        return cls(tuple(words), tuple(terms))

    def __bool__(self) -> bool:
        return bool(self.words or self.terms)

    def matches(self, row: RunRow) -> bool:
        return all(word in row.search for word in self.words) and all(
            value in (row.fields[field].split() if field in WHOLE_WORDS else row.fields[field])
            for field, value in self.terms
        )

    def select(self, rows: Sequence[RunRow]) -> tuple[RunRow, ...]:
        """The rows that match, in their order (all of them for an empty filter)."""
        return tuple(row for row in rows if self.matches(row)) if self else tuple(rows)
