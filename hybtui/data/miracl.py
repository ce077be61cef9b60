"""MIRACL and BEIR-style monolingual retrieval sets: queries, graded qrels, a corpus on disk.

MIRACL (Zhang et al., TACL 2023) asks, per language, for the Wikipedia passages relevant to
each query within that language's whole corpus (132 k passages in sw, 33 M in en), so a
corpus stays on disk (`hybtui.data.corpus`); this module joins it with the queries and
their graded judgments (qrels).

MIRACL (`--eval miracl[:LANG,...]`, the dev split). Each file of language LANG is looked up
under DIR/miracl/ and DIR (DIR: --data-dir / HYBTUI_DATA_DIR), then the user cache
~/.cache/hybtui/data/miracl/, then the Hugging Face hub. Within such a root, in ROOT/LANG/,
ROOT/miracl-v1.0-LANG/ or ROOT itself, directly or in a topics/ or qrels/ subfolder:

    topics.miracl-v1.0-LANG-dev.tsv             query-id <TAB> query
    qrels.miracl-v1.0-LANG-dev.tsv              query-id Q0 doc-id relevance (TREC qrels)
    miracl-corpus-v1.0-LANG/docs-*.jsonl[.gz]   {"docid": …, "title": …, "text": …} per line

That is the layout of the hub repositories miracl/miracl (miracl-v1.0-LANG/topics/ and
qrels/) and miracl/miracl-corpus (miracl-corpus-v1.0-LANG/), so copies of both in
DIR/miracl/ work as they are. Files not found locally are fetched from those repositories
with huggingface_hub (into its cache) when the hub is reachable.

BEIR (`--eval beir:PATH[:LANG,...]`), to bring any other monolingual retrieval set:

    PATH/corpus.jsonl[.gz]    {"_id": …, "title": …, "text": …} per line
    PATH/queries.jsonl[.gz]   {"_id": …, "text": …} per line
    PATH/qrels/test.tsv       header `query-id corpus-id score`, then one judgment per line
                              (qrels/dev.tsv when there is no test.tsv)

PATH may instead hold one such folder per language (PATH/sw/corpus.jsonl, …): the folder
names are the languages. A single folder is language `und` (undetermined) unless one
language is named (`beir:/data/scifact:en`). Rows name the benchmark after PATH's last
component.

Relevance follows trec_eval: a judgment > 0 is relevant, with its level as the nDCG gain.
A relevant passage missing from the corpus stays relevant — it can never be retrieved,
exactly as when trec_eval scores a run against the official qrels — and is counted in the
benchmark's warnings. Passages are encoded as "title text".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybtui.data import sources
from hybtui.data.corpus import Corpus, jsonl_rows, scan_corpus, text_lines
from hybtui.data.lareqa import check_languages, hashed_subsets, subset_queries
from hybtui.errors import HybtuiError

NAME = "miracl"
BEIR = "beir"
LANGUAGES = ("ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th", "yo", "zh")
SPLIT = "dev"
UNDETERMINED = "und"
HUB_TOPICS, HUB_CORPUS = "miracl/miracl", "miracl/miracl-corpus"


@dataclass(frozen=True)
class CorpusSplit:
    """One language: its judged queries, and per query its relevant passages' corpus rows
    and relevance levels."""

    lang: str
    query_ids: tuple[str, ...]
    queries: tuple[str, ...]
    corpus: Corpus
    #: (queries, K) corpus rows of the relevant passages; −1 for one missing from the corpus
    relevant: np.ndarray = field(repr=False)
    #: (queries, K) their relevance levels (> 0); 0 marks a padding slot
    grades: np.ndarray = field(repr=False)

    def subset(self, keep: np.ndarray) -> CorpusSplit:
        """The same split with only the queries at positions `keep` (the corpus unchanged)."""
        return subset_queries(self, keep, "relevant", "grades")


@dataclass(frozen=True)
class CorpusBenchmark:
    """Monolingual retrieval over a large corpus, per language (MIRACL or a BEIR folder)."""

    name: str
    splits: dict[str, CorpusSplit]
    #: problems in the data that do not stop an evaluation but change what it measures
    warnings: tuple[str, ...] = ()

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.splits)

    def max_queries(self, n: int) -> CorpusBenchmark:
        """A deterministic subset of at most `n` queries per language (hash of the query id)."""
        return CorpusBenchmark(self.name, hashed_subsets(self.splits, n), self.warnings)


# ---------------------------------------------------------------- queries and judgments


def _topics_tsv(path: Path) -> dict[str, str]:
    """MIRACL topics: query id → query, in file order."""
    topics: dict[str, str] = {}
    for where, line in text_lines(path):
        qid, tab, query = line.partition("\t")
        if not tab or not qid.strip() or not query.strip():
            raise HybtuiError(f"{where}: expected 'query-id<TAB>query text', got {line[:60]!r}")
        if qid in topics:
            raise HybtuiError(f"{where}: query id {qid} appears twice")
        topics[qid] = query.strip()
    return topics


def _queries_jsonl(path: Path) -> dict[str, str]:
    """BEIR queries: query id → query, in file order."""
    queries: dict[str, str] = {}
    for where, row in jsonl_rows((path,), ("_id", "text")):
        if row["_id"] in queries:
            raise HybtuiError(f"{where}: query id {row['_id']} appears twice")
        queries[row["_id"]] = row["text"]
    return queries


def _qrels(path: Path, beir: bool) -> dict[str, dict[str, int]]:
    """Judgments: query id → {doc id → relevance}. TREC lines are `qid Q0 docid rel`
    (whitespace-separated); BEIR lines are `qid<TAB>docid<TAB>score` after a header."""
    expected = "'query-id<TAB>corpus-id<TAB>score'" if beir else "'query-id Q0 doc-id relevance' (TREC qrels)"
    judged: dict[str, dict[str, int]] = {}
    for where, line in text_lines(path):
        fields = line.split("\t") if beir else line.split()
        if beir and fields[0] == "query-id":  # the header
            continue
        try:
            if len(fields) != (3 if beir else 4):
                raise ValueError
            rel = int(fields[-1])
        except ValueError:
            raise HybtuiError(f"{where}: expected {expected}, got {line[:60]!r}") from None
        judged.setdefault(fields[0], {})[fields[-2]] = rel
    return judged


# ---------------------------------------------------------------- one language


def _language_split(
    bench: str,
    lang: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    qrels_path: Path,
    corpus_files: tuple[Path, ...],
    id_field: str,
) -> tuple[CorpusSplit, list[str]]:
    """Join queries, qrels and corpus; the split and what it had to warn about."""
    where = f"{bench}/{lang}"
    if not queries:
        raise HybtuiError(f"{where}: no queries")
    relevant_of = {q: {d: rel for d, rel in qrels.get(q, {}).items() if rel > 0} for q in queries}
    judged = [q for q in queries if relevant_of[q]]
    if not judged:
        raise HybtuiError(
            f"{where}: no queries to score: none of the {len(queries)} queries has a relevant passage in {qrels_path}"
        )
    warnings = []
    if len(judged) < len(queries):
        warnings.append(
            f"{where}: {len(queries) - len(judged)} of {len(queries)} queries have no relevant passage "
            "in the qrels and are not scored"
        )
    strays = len(qrels.keys() - queries.keys())
    if strays:
        warnings.append(f"{where}: {strays} query id(s) of {qrels_path.name} are not among the queries; ignored")
    wanted = {d for q in judged for d in relevant_of[q]}
    corpus, rows = scan_corpus(corpus_files, id_field, wanted)
    missing = sorted(wanted - rows.keys())
    if missing:
        warnings.append(
            f"{where}: {len(missing)} of {len(wanted)} relevant passages are not in the corpus "
            f"(e.g. {', '.join(missing[:3])}); they count as relevant and never retrieved"
        )
    width = max(len(relevant_of[q]) for q in judged)
    relevant = np.full((len(judged), width), -1, dtype=np.int64)
    grades = np.zeros((len(judged), width), dtype=np.float64)
    for i, q in enumerate(judged):
        for j, (docid, rel) in enumerate(relevant_of[q].items()):
            relevant[i, j], grades[i, j] = rows.get(docid, -1), rel
    split = CorpusSplit(lang, tuple(judged), tuple(queries[q] for q in judged), corpus, relevant, grades)
    return split, warnings


def _assemble(name: str, parts: dict[str, tuple]) -> CorpusBenchmark:
    splits, warnings = {}, []
    for lang, args in parts.items():
        splits[lang], notes = _language_split(name, lang, *args)
        warnings += notes
    return CorpusBenchmark(name, splits, tuple(warnings))


# ---------------------------------------------------------------- MIRACL


def _natural(path: Path) -> list:
    """Sort key putting docs-2 before docs-10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _shards(folder: Path) -> tuple[Path, ...]:
    """docs-*.jsonl[.gz] in shard order; an uncompressed copy of a shard wins over its .gz."""
    by_shard = {p.name.removesuffix(".gz"): p for p in sorted(folder.glob("docs-*.jsonl.gz"))}
    by_shard.update({p.name: p for p in folder.glob("docs-*.jsonl")})
    return tuple(sorted(by_shard.values(), key=_natural))


def _language_folders(root: Path, lang: str) -> tuple[Path, ...]:
    return root / lang, root / f"miracl-v1.0-{lang}", root


def _find_tsv(roots: list[Path], lang: str, kind: str) -> Path | None:
    name = f"{kind}.miracl-v1.0-{lang}-{SPLIT}.tsv"
    for root in roots:
        for folder in _language_folders(root, lang):
            for candidate in (folder / name, folder / kind / name):
                if candidate.is_file():
                    return candidate
    return None


def _find_corpus(roots: list[Path], lang: str) -> tuple[Path, ...]:
    for root in roots:
        for folder in _language_folders(root, lang):
            shards = _shards(folder / f"miracl-corpus-v1.0-{lang}")
            if shards:
                return shards
    return ()


def _hub_roots(lang: str, need_tsv: bool, need_corpus: bool) -> list[Path]:
    """Snapshots of the official hub repositories holding what is missing (cached or downloaded)."""
    from huggingface_hub import snapshot_download  # only when files are missing locally

    wanted = []
    if need_tsv:
        wanted.append(
            (
                HUB_TOPICS,
                [f"miracl-v1.0-{lang}/{kind}/{kind}.miracl-v1.0-{lang}-{SPLIT}.tsv" for kind in ("topics", "qrels")],
            )
        )
    if need_corpus:
        wanted.append((HUB_CORPUS, [f"miracl-corpus-v1.0-{lang}/docs-*.jsonl.gz"]))
    return [Path(snapshot_download(repo, repo_type="dataset", allow_patterns=patterns)) for repo, patterns in wanted]


def _locate(lang: str, data_dir: Path | None, allow_download: bool) -> tuple[Path, Path, tuple[Path, ...]]:
    """Topics, qrels and corpus shards of `lang`: local copies first, then the hub."""
    roots = sources.dataset_roots(NAME, data_dir)
    topics, qrels, corpus = _find_tsv(roots, lang, "topics"), _find_tsv(roots, lang, "qrels"), _find_corpus(roots, lang)
    hub_problem = "" if allow_download else "downloads disabled"
    if allow_download and not (topics and qrels and corpus):
        try:
            hub = _hub_roots(lang, not (topics and qrels), not corpus)
            topics, qrels = topics or _find_tsv(hub, lang, "topics"), qrels or _find_tsv(hub, lang, "qrels")
            corpus = corpus or _find_corpus(hub, lang)
        except Exception as exc:  # offline, gated, not found, network: all mean "not available here"
            hub_problem = f"the Hugging Face hub was not reachable ({type(exc).__name__})"
    if topics and qrels and corpus:
        return topics, qrels, corpus
    missing = [
        name
        for name, found in (
            (f"topics.miracl-v1.0-{lang}-{SPLIT}.tsv", topics),
            (f"qrels.miracl-v1.0-{lang}-{SPLIT}.tsv", qrels),
            (f"miracl-corpus-v1.0-{lang}/docs-*.jsonl.gz", corpus),
        )
        if not found
    ]
    where = (
        f"{data_dir}/{NAME}/{lang}/ (your data directory)"
        if data_dir is not None
        else f"{sources.cache_root() / NAME / lang}/ or DIR/{NAME}/{lang}/ with --data-dir / {sources.DATA_DIR_ENV}"
    )
    raise HybtuiError(
        f"{NAME}/{lang}: not found locally: {', '.join(missing)}. Put them under {where}; the originals are "
        f"in the Hugging Face datasets {HUB_TOPICS} (topics, qrels) and {HUB_CORPUS} (corpus)"
        + (f"; {hub_problem}" if hub_problem else "")
    )


def load(languages: list[str] | None, data_dir: Path | None, *, allow_download: bool = True) -> CorpusBenchmark:
    """MIRACL's dev split in `languages` (default: all 18)."""
    parts = {}
    for lang in check_languages(NAME, languages, LANGUAGES):
        topics, qrels, corpus = _locate(lang, data_dir, allow_download)
        parts[lang] = (_topics_tsv(topics), _qrels(qrels, beir=False), qrels, corpus, "docid")
    return _assemble(NAME, parts)


# ---------------------------------------------------------------- BEIR


def _beir_file(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / f"{stem}.jsonl", folder / f"{stem}.jsonl.gz") if p.is_file()), None)


def _beir_part(folder: Path, where: str) -> tuple:
    corpus, queries = _beir_file(folder, "corpus"), _beir_file(folder, "queries")
    qrels = next((p for p in (folder / "qrels/test.tsv", folder / "qrels/dev.tsv") if p.is_file()), None)
    if not (corpus and queries and qrels):
        absent = [
            n for n, p in (("corpus.jsonl", corpus), ("queries.jsonl", queries), ("qrels/test.tsv", qrels)) if p is None
        ]
        raise HybtuiError(f"{where}: {folder} lacks {', '.join(absent)} (BEIR layout)")
    return _queries_jsonl(queries), _qrels(qrels, beir=True), qrels, (corpus,), "_id"


def load_beir(path: str, languages: list[str] | None) -> CorpusBenchmark:
    """A BEIR-style folder (one language) or a folder of them (one per language)."""
    where = f"{BEIR}:{path}"
    root = Path(path).expanduser()
    if not root.is_dir():
        raise HybtuiError(f"{where}: no such directory")
    if _beir_file(root, "corpus"):
        if languages is not None and len(languages) != 1:
            raise HybtuiError(f"{where} is a single BEIR folder: name one language for it (e.g. {where}:en) or none")
        folders = {(languages or [UNDETERMINED])[0]: root}
    else:
        available = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and _beir_file(d, "corpus")))
        if not available:
            raise HybtuiError(f"{where}: holds neither corpus.jsonl[.gz] nor language folders with one (BEIR layout)")
        folders = {lang: root / lang for lang in check_languages(where, languages, available)}
    return _assemble(root.resolve().name, {lang: _beir_part(folder, where) for lang, folder in folders.items()})
