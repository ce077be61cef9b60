"""Dense retrieval over corpora larger than memory: streamed encoding, an embedding cache, FAISS search.

A corpus is encoded `ENCODE_CHUNK` passages at a time into a float16 `.npy` memmap, so
memory holds one chunk of texts and vectors, never the corpus; float16 halves disk and
I/O, and its rounding (about 1e-3 on a cosine) is far below the score gaps that order a
ranking. A finished memmap is kept under a key of (encoder fingerprint, corpus sha256):
evaluating the same weights on the same corpus again reads it back instead of encoding,
and a changed corpus or checkpoint gets a new key. Entries are written under a temporary
name and renamed when complete, so an interrupted run never leaves one that looks valid.

Search. `exact` (the default) streams the memmap through a FAISS `IndexFlatIP`, one block
at a time, merging each block's top k in a `ResultHeap`: exact inner product (the cosine
of normalised embeddings) in the memory of one block. `hnsw` (`IndexHNSWFlat`) and `ivf`
(`IndexIVFFlat`) hold every vector in RAM as float32 and spend a build to answer queries
faster; they are always checked against exact search, and their recall of the exact
top k is reported next to both timings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from hybtui.data import sources
from hybtui.data.corpus import Corpus
from hybtui.errors import HybtuiError
from hybtui.modeling.encoder import EncodeProgress, Encoder

INDEXES = ("exact", "hnsw", "ivf")
STORAGE_DTYPE = np.float16
#: passages per encoder call: long enough for length-sorted batching to pad little
ENCODE_CHUNK = 16_384
#: corpus rows per exact-search block (100 MB of float32 at dim 384)
SEARCH_BLOCK = 65_536
#: HNSW graph degree and build / search beam widths (faiss's defaults but a wider search beam)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 16, 40, 256
#: IVF probes this share of its √n lists per query
IVF_PROBE_SHARE = 1 / 8


def check_index(kind: str) -> str:
    if kind not in INDEXES:
        raise HybtuiError(f"unknown index '{kind}' (use {', '.join(INDEXES)})")
    return kind


def embedding_cache_root() -> Path:
    """Where corpus embeddings are kept: beside the data cache (`$XDG_CACHE_HOME/hybtui/embeddings`)."""
    return sources.cache_root().parent / "embeddings"


#: Tokenizer settings each encode() sets anew: not part of what an encoder is.
TRANSIENT = ("truncation", "padding")


def encoder_fingerprint(encoder: Encoder, bf16: bool) -> str:
    """A digest of everything that shapes a passage embedding: the weights, the tokenizer,
    pooling / prefixes / length / normalisation, and the precision. The checkpoint's path is
    left out: the same weights found elsewhere are the same encoder."""
    digest = hashlib.blake2b(digest_size=20)
    settings = {k: v for k, v in dataclasses.asdict(encoder.spec).items() if k != "source"}
    digest.update(json.dumps([settings, bf16]).encode())
    tokenizer = encoder.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # its serialisation, less the truncation / padding the last encode() left set
        vocabulary = json.dumps({k: v for k, v in json.loads(backend.to_str()).items() if k not in TRANSIENT})
    else:
        vocabulary = json.dumps(sorted(tokenizer.get_vocab().items()))
    digest.update(vocabulary.encode())
    for name, tensor in encoder.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())
    return digest.hexdigest()


def _encode_into(
    out: np.ndarray, encoder: Encoder, corpus: Corpus, batch_size: int, bf16: bool, progress: EncodeProgress | None
) -> None:
    done = 0
    for texts in corpus.texts(ENCODE_CHUNK):
        if done + len(texts) > corpus.size:
            break
        report = progress and (lambda i, _n, start=done: progress(start + i, corpus.size))
        out[done : done + len(texts)] = encoder.encode(texts, "passage", batch_size, bf16, report)
        done += len(texts)
    if done != corpus.size:
        raise HybtuiError(
            f"{corpus.files[0].parent}: the corpus changed while it was being encoded "
            f"({corpus.size} passages when it was loaded, not so now)"
        )


def corpus_embeddings(
    encoder: Encoder,
    corpus: Corpus,
    batch_size: int = 64,
    bf16: bool = False,
    progress: EncodeProgress | None = None,
    cache_dir: Path | None = None,
) -> tuple[np.ndarray, bool]:
    """The (passages, dim) float16 embeddings of `corpus` as a memmap, and whether
    they came from the cache.

    With `cache_dir` they are read from, or encoded into, its entry for this encoder and
    corpus. Without, they go to an unlinked temporary file (the space is freed when the
    memmap is), as training's evaluations want: their weights change every time.
    """
    if cache_dir is None:
        fd, name = tempfile.mkstemp(suffix=".npy", prefix="hybtui-corpus-")
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(name, mode="w+", dtype=STORAGE_DTYPE, shape=(corpus.size, encoder.dim))
        finally:
            os.unlink(name)
        _encode_into(out, encoder, corpus, batch_size, bf16, progress)
        return out, False
    path = Path(cache_dir) / corpus.sha256[:24] / f"{encoder_fingerprint(encoder, bf16)[:24]}.npy"
    try:
        cached = np.load(path, mmap_mode="r")
        if cached.shape == (corpus.size, encoder.dim) and cached.dtype == STORAGE_DTYPE:
            return cached, True
    except (OSError, ValueError):  # absent, or not a complete .npy: encode it (again)
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.part")
    try:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=STORAGE_DTYPE, shape=(corpus.size, encoder.dim))
        _encode_into(out, encoder, corpus, batch_size, bf16, progress)
        out.flush()
        del out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r"), False


# ---------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchReport:
    """How one search went; approximate indexes also carry their agreement with exact search."""

    index: str
    passages: int
    queries: int
    build_s: float
    search_s: float
    exact_search_s: float | None = None
    #: mean share of the exact top k that the approximate index also returned
    recall_vs_exact: float | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _blocks(passages: np.ndarray, size: int):
    """(first row, float32 block) over a (memmapped) embedding matrix."""
    for start in range(0, len(passages), size):
        yield start, np.ascontiguousarray(passages[start : start + size], dtype=np.float32)


def exact_search(passages: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, corpus rows) by inner product, streaming the corpus block by block;
    rows are −1 where the corpus has fewer than k passages."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for start, block in _blocks(passages, SEARCH_BLOCK):
        index = faiss.IndexFlatIP(block.shape[1])
        index.add(block)
        scores, rows = index.search(queries, min(k, len(block)))
        heap.add_result(scores, rows + start)
    heap.finalize()
    return heap.D, heap.I


def build_index(kind: str, passages: np.ndarray, k: int) -> faiss.Index:
    """An approximate inner-product index over all passages (held in RAM as float32),
    set up to search the top `k`."""
    n, dim = passages.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
    else:
        lists = max(1, round(n**0.5))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False))
        index.train(np.ascontiguousarray(passages[sample], dtype=np.float32))
        index.nprobe = max(1, round(lists * IVF_PROBE_SHARE))
    for _, block in _blocks(passages, SEARCH_BLOCK):
        index.add(block)
    return index


def search(
    passages: np.ndarray, queries: np.ndarray, k: int, index: str = "exact"
) -> tuple[np.ndarray, np.ndarray, SearchReport]:
    """The top-k (scores, corpus rows) of each query with the chosen index, and its report."""
    check_index(index)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    started = time.perf_counter()
    exact_scores, exact_rows = exact_search(passages, queries, k)
    exact_s = time.perf_counter() - started
    if index == "exact":
        return exact_scores, exact_rows, SearchReport(index, len(passages), len(queries), 0.0, exact_s)
    started = time.perf_counter()
    approximate = build_index(index, passages, k)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    scores, rows = approximate.search(queries, k)
    search_s = time.perf_counter() - started
    report = SearchReport(index, len(passages), len(queries), build_s, search_s, exact_s, recall_of(rows, exact_rows))
    return scores, rows, report


def recall_of(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean over queries of the share of `reference`'s rows (−1: none) that `found` holds."""
    hit = (reference[:, :, None] == found[:, None, :]).any(axis=2) & (reference >= 0)
    return float(np.mean(hit.sum(axis=1) / np.maximum((reference >= 0).sum(axis=1), 1)))
