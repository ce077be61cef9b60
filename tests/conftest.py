"""Shared fixtures: offline hub, the LAReQA files, an isolated user cache."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
#: Where `hybtui data fetch` puts the pinned files (the user cache, as the session starts).
USER_DATA = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hybtui" / "data"


def _data_dir() -> Path:
    """$HYBTUI_DATA_DIR as the session starts; else a data folder provided beside the
    checkout (``shared/data``, as on the project's CI machine); else the user cache."""
    if os.environ.get("HYBTUI_DATA_DIR"):
        return Path(os.environ["HYBTUI_DATA_DIR"])
    beside = REPO.parent / "shared" / "data"
    return beside if (beside / "lareqa").is_dir() else USER_DATA


#: The benchmark files the tests read (read-only).
SHARED_DATA = _data_dir()


def _has_lareqa(root: Path) -> bool:
    return all((root / "lareqa" / bench / "en.json").is_file() for bench in ("xquad-r", "mlqa-r"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The LAReQA files (SHARED_DATA); in the user cache they are downloaded once, checksums
    verified, by `hybtui data fetch`."""
    if not _has_lareqa(SHARED_DATA) and SHARED_DATA == USER_DATA:
        env = {**os.environ, "XDG_CACHE_HOME": str(USER_DATA.parents[1])}
        env.pop("HYBTUI_DATA_DIR", None)
        subprocess.run([sys.executable, "-m", "hybtui", "data", "fetch", "xquad-r", "mlqa-r"], env=env, check=False)
    if not _has_lareqa(SHARED_DATA):
        pytest.fail(
            f"benchmark data not found at {SHARED_DATA}/lareqa and not downloadable: set HYBTUI_DATA_DIR "
            f"to a data directory holding lareqa/xquad-r/*.json and lareqa/mlqa-r/*.json"
        )
    return SHARED_DATA


@pytest.fixture
def writable_data(shared_data, tmp_path) -> Path:
    """A writable copy of the LAReQA files (DIR/lareqa/...), for tests that damage them."""
    root = tmp_path / "data"
    shutil.copytree(shared_data / "lareqa", root / "lareqa")
    for f in root.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    return root


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for the session: me5-small and tiny are materialised once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch, model_cache) -> Path:
    """Each test gets its own empty user cache, so nothing leaks into ~/.cache."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("HYBTUI_MODEL_CACHE", str(model_cache))
    monkeypatch.delenv("HYBTUI_DATA_DIR", raising=False)
    return cache


@pytest.fixture(scope="session")
def tiny_encoder(model_cache):
    """The tiny random XLM-R-shaped encoder (real tokenizer), loaded once."""
    import os

    from hybtui.modeling import encoder as models

    os.environ["HYBTUI_MODEL_CACHE"] = str(model_cache)
    return models.load_encoder(models.encoder_spec("tiny"), device="cpu")
