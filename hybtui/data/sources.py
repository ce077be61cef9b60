"""Where benchmark files come from: a user directory, the user cache, or a pinned download.

Every file a benchmark needs is a `PinnedFile`: a path relative to the dataset root,
the URL it is published at and its sha256. Resolution order for each file:

1. the data directory (`--data-dir` / `HYBTUI_DATA_DIR`), if one is given;
2. the user cache (`$XDG_CACHE_HOME/hybtui/data`, default `~/.cache/hybtui/data`);
3. a download into the cache, checked against the pinned sha256 before it is kept.

A file that is found but does not match its checksum is an error, never silently
replaced, so a researcher always knows which bytes produced a number.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hybtui.errors import HybtuiError

DATA_DIR_ENV = "HYBTUI_DATA_DIR"

#: Called as progress(label, bytes_done, bytes_total) while downloading.
DownloadProgress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class PinnedFile:
    """One published file: `relpath` under a dataset root, its URL and sha256."""

    dataset: str
    relpath: str
    url: str
    sha256: str


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hybtui" / "data"


def data_dir_from_env(data_dir: str | Path | None) -> Path | None:
    """The explicit data directory: the argument, else `HYBTUI_DATA_DIR`, else None."""
    value = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if value in (None, ""):
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise HybtuiError(f"data directory {path} does not exist (from --data-dir or {DATA_DIR_ENV})")
    return path


def dataset_roots(dataset: str, data_dir: Path | None) -> list[Path]:
    """Candidate roots for `dataset`, in resolution order.

    A data directory may hold the dataset in a subfolder (`DIR/lareqa/xquad-r/en.json`)
    or be the dataset folder itself (`DIR/xquad-r/en.json`); both are accepted.
    """
    roots = []
    if data_dir is not None:
        roots += [data_dir / dataset, data_dir]
    roots.append(cache_root() / dataset)
    return roots


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find(pinned: PinnedFile, data_dir: Path | None) -> Path | None:
    """The first existing copy of `pinned` in the resolution order, or None."""
    for root in dataset_roots(pinned.dataset, data_dir):
        candidate = root / pinned.relpath
        if candidate.is_file():
            return candidate
    return None


def verify(pinned: PinnedFile, path: Path, describe_mismatch: Callable[[Path], str] | None = None) -> None:
    """Raise a HybtuiError naming the file if its sha256 is not the pinned one.

    `describe_mismatch` may explain what is wrong with the content (e.g. "not valid
    JSON: truncated at line 3"), which is more useful than two hashes.
    """
    actual = sha256_of(path)
    if actual == pinned.sha256:
        return
    detail = describe_mismatch(path) if describe_mismatch else ""
    raise HybtuiError(
        f"{path}: checksum mismatch (expected sha256 {pinned.sha256[:12]}…, got {actual[:12]}…)"
        + (f"; {detail}" if detail else "; the file was modified or is a different version")
        + f". Replace it with the published file {pinned.url}"
    )


def download(pinned: PinnedFile, progress: DownloadProgress | None = None) -> Path:
    """Download `pinned` into the cache, verifying the checksum before the file appears."""
    target = cache_root() / pinned.dataset / pinned.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(pinned.url, timeout=60) as response:
            total = response.length
            done = 0
            while block := response.read(1 << 16):
                out.write(block)
                done += len(block)
                if progress:
                    progress(pinned.relpath, done, total)
        verify(pinned, tmp)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as exc:
        raise HybtuiError(f"could not download {pinned.url}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve(
    files: Iterable[PinnedFile],
    data_dir: Path | None,
    *,
    allow_download: bool = True,
    progress: DownloadProgress | None = None,
    describe_mismatch: Callable[[Path], str] | None = None,
) -> dict[str, Path]:
    """Map each file's relpath to a verified local path, downloading what is missing.

    All files are located (and missing ones named together) before anything is
    downloaded, so offline users get one message listing every file to provide.
    """
    files = list(files)
    found = {f.relpath: find(f, data_dir) for f in files}
    missing = [f for f in files if found[f.relpath] is None]
    if missing and not allow_download:
        raise HybtuiError(_missing_message(missing, data_dir))
    for f in missing:
        try:
            found[f.relpath] = download(f, progress)
        except HybtuiError as exc:
            raise HybtuiError(f"{exc}\n{_missing_message(missing, data_dir)}") from exc
    for f in files:
        verify(f, found[f.relpath], describe_mismatch)
    return {relpath: path for relpath, path in found.items() if path is not None}


def _missing_message(missing: list[PinnedFile], data_dir: Path | None) -> str:
    dataset = missing[0].dataset
    names = ", ".join(f.relpath for f in missing[:6]) + (" …" if len(missing) > 6 else "")
    where = (
        f"{data_dir}/{dataset}/ (your data directory)"
        if data_dir is not None
        else f"{cache_root() / dataset}/ or a directory named by --data-dir / {DATA_DIR_ENV} (as DIR/{dataset}/…)"
    )
    return (
        f"{dataset}: {len(missing)} file(s) not available offline: {names}. "
        f"Put them under {where}; the originals are at {missing[0].url.rsplit('/', 2)[0]}/…"
    )
