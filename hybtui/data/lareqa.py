"""XQuAD-R and MLQA-R (LAReQA): SQuAD-format JSON per language, parsed into a typed benchmark.

Each paragraph carries `sentences` and `sentence_breaks`; every sentence of every
paragraph is one retrieval candidate of its language. A question's relevant candidate
in language Y is the sentence of the Y paragraph whose span holds the answer start of
the Y version of that question; question ids are shared across the parallel versions,
so the question id is the parallel *item* id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybtui.data.sources import DownloadProgress, PinnedFile, resolve
from hybtui.errors import HybtuiError

DATASET = "lareqa"
_COMMIT = "354d67d1cd066854cdfbf5ad0e6105528976141d"
_URL = f"https://raw.githubusercontent.com/google-research-datasets/lareqa/{_COMMIT}"

SHA256 = {
    "mlqa-r/ar.json": "2132fbc03208535c0fe01f2e2c5121d06f9c2aa799af93b0a719dbc105bdf137",
    "mlqa-r/de.json": "ce9454dc5aa6f2d85c23cd6e49cb367fbb7c4c6e62d7f71e355c6b5dae4d0886",
    "mlqa-r/en.json": "fedd9a5cc0848dda80caf84aa36f482adaae230526a3f6e9e86926a93ef3b1e4",
    "mlqa-r/es.json": "70ecba276b8c96a692b120693a595d076ce94ad21d4b28311538a9fcbfe0f9d7",
    "mlqa-r/hi.json": "4dd0fb3c06f737a5481d705bc1dcac7876712a5815c9265908fbb3a0696cb654",
    "mlqa-r/vi.json": "9d3baff6ba03e6793b25594217265ea59a136b9733833dca8a9582a84a78ff85",
    "mlqa-r/zh.json": "57f01d2fff50cf3392805635b01445339f225ad5bf28ba8443b12f8dbd1e69dc",
    "xquad-r/ar.json": "c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d",
    "xquad-r/de.json": "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949",
    "xquad-r/el.json": "163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6",
    "xquad-r/en.json": "7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe",
    "xquad-r/es.json": "f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de",
    "xquad-r/hi.json": "ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872",
    "xquad-r/ru.json": "7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1",
    "xquad-r/th.json": "c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4",
    "xquad-r/tr.json": "f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94",
    "xquad-r/vi.json": "e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995",
    "xquad-r/zh.json": "80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed",
}

LANGUAGES = {
    "xquad-r": ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"),
    "mlqa-r": ("ar", "de", "en", "es", "hi", "vi", "zh"),
}


def pinned_files(bench: str, languages: tuple[str, ...] | None = None) -> list[PinnedFile]:
    langs = languages or LANGUAGES[bench]
    return [
        PinnedFile(DATASET, f"{bench}/{lang}.json", f"{_URL}/{bench}/{lang}.json", SHA256[f"{bench}/{lang}.json"])
        for lang in langs
    ]


def subset_queries(split, keep: np.ndarray, *per_query: str):
    """``split`` (a frozen dataclass with ``query_ids`` and ``queries``) with only the queries at
    positions ``keep``; the arrays named in ``per_query`` (one row per query) are cut alike."""
    return dataclasses.replace(
        split,
        query_ids=tuple(split.query_ids[i] for i in keep),
        queries=tuple(split.queries[i] for i in keep),
        **{name: getattr(split, name)[keep] for name in per_query},
    )


@dataclass(frozen=True)
class LanguageSplit:
    """One language of a benchmark: its questions and its candidate sentences."""

    lang: str
    query_ids: tuple[str, ...]
    queries: tuple[str, ...]
    candidates: tuple[str, ...]
    #: For each query, the index into `candidates` of the sentence holding its answer.
    answer: np.ndarray = field(repr=False)

    def subset(self, keep: np.ndarray) -> LanguageSplit:
        """The same split with only the queries at positions `keep` (candidates unchanged)."""
        return subset_queries(self, keep, "answer")


@dataclass(frozen=True)
class Benchmark:
    """A parallel retrieval benchmark over several languages."""

    name: str
    splits: dict[str, LanguageSplit]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.splits)

    def relevant_in(self, query_lang: str, doc_lang: str) -> np.ndarray:
        """For each query of `query_lang`, its relevant candidate index in `doc_lang`, or -1
        where the item has no `doc_lang` version (MLQA-R is only 2–4-way parallel)."""
        answer_of = dict(zip(self.splits[doc_lang].query_ids, self.splits[doc_lang].answer.tolist()))
        return np.array([answer_of.get(q, -1) for q in self.splits[query_lang].query_ids], dtype=np.int64)

    def max_queries(self, n: int) -> Benchmark:
        """A deterministic subset of at most `n` queries per language.

        Items are ranked by a hash of their id, so the subsets of parallel languages
        hold the same items where they exist and cross/multi settings stay meaningful.
        """
        return Benchmark(self.name, hashed_subsets(self.splits, n))


def hashed_subsets(splits: dict, n: int) -> dict:
    """Each split's subset of at most `n` queries, those whose ids hash lowest (the same
    ids in every language that has them). Splits need `query_ids` and `subset(indices)`."""
    if n < 1:
        raise HybtuiError(f"--max-queries must be at least 1 (got {n})")
    out = {}
    for lang, split in splits.items():
        order = sorted(range(len(split.query_ids)), key=lambda i: stable_hash(split.query_ids[i]))
        out[lang] = split.subset(np.array(sorted(order[:n]), dtype=np.int64))
    return out


def stable_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def select_languages(bench: str, languages: list[str] | None) -> tuple[str, ...]:
    """Validate a language selection for `bench` (None means all of them)."""
    if bench not in LANGUAGES:
        raise HybtuiError(f"unknown benchmark '{bench}'; available: {', '.join(LANGUAGES)}")
    return check_languages(bench, languages, LANGUAGES[bench])


def check_languages(bench: str, languages: list[str] | None, available: tuple[str, ...]) -> tuple[str, ...]:
    """Validate a language selection against `available` (None means all of them)."""
    if languages is None:
        return available
    if not languages:
        raise HybtuiError(f"{bench}: empty language list; available: {', '.join(available)}")
    unknown = [lang for lang in languages if lang not in available]
    if unknown:
        raise HybtuiError(
            f"{bench}: unknown language(s) {', '.join(repr(u) for u in unknown)}; available: {', '.join(available)}"
        )
    return tuple(dict.fromkeys(languages))


def load(
    bench: str,
    languages: list[str] | None = None,
    data_dir: Path | None = None,
    *,
    allow_download: bool = True,
    progress: DownloadProgress | None = None,
) -> Benchmark:
    """Load `bench` ("xquad-r" or "mlqa-r") for `languages` (default: all)."""
    langs = select_languages(bench, languages)
    paths = resolve(
        pinned_files(bench, langs),
        data_dir,
        allow_download=allow_download,
        progress=progress,
        describe_mismatch=_describe_json_problem,
    )
    return Benchmark(bench, {lang: parse_file(paths[f"{bench}/{lang}.json"], lang) for lang in langs})


def _describe_json_problem(path: Path) -> str:
    try:
        json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"not valid JSON (truncated or corrupt?): {exc}"
    return ""


def parse_file(path: Path, lang: str) -> LanguageSplit:
    """Parse one LAReQA JSON file; errors name the file and what is wrong in it."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise HybtuiError(f"{path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HybtuiError(f"{path}: not valid JSON (truncated or corrupt?): {exc}") from exc
    query_ids: list[str] = []
    queries: list[str] = []
    answers: list[int] = []
    candidates: list[str] = []
    try:
        for article in doc["data"]:
            for paragraph in article["paragraphs"]:
                first = len(candidates)
                breaks = paragraph["sentence_breaks"]
                candidates.extend(paragraph["sentences"])
                for qa in paragraph["qas"]:
                    start = qa["answers"][0]["answer_start"]
                    hit = next((i for i, (b, e) in enumerate(breaks) if b <= start < e), None)
                    if hit is None:
                        raise HybtuiError(f"{path}: answer of question {qa['id']} lies in no sentence span")
                    query_ids.append(qa["id"])
                    queries.append(qa["question"])
                    answers.append(first + hit)
    except (KeyError, IndexError, TypeError) as exc:
        raise HybtuiError(f"{path}: not in the LAReQA format (missing or malformed field {exc})") from exc
    if not queries:
        raise HybtuiError(f"{path}: holds no questions")
    return LanguageSplit(lang, tuple(query_ids), tuple(queries), tuple(candidates), np.array(answers, dtype=np.int64))
