"""Shared fixtures: offline hub, the shared LAReQA copy, an isolated user cache."""

import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
#: The benchmark files the tests read: $HYBTUI_DATA_DIR as the session starts, else a
#: ``shared/data`` folder beside the repository.
SHARED_DATA = Path(os.environ.get("HYBTUI_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only LAReQA copy (SHARED_DATA)."""
    if not (SHARED_DATA / "lareqa" / "xquad-r" / "en.json").is_file():
        pytest.fail(f"benchmark data not found at {SHARED_DATA}/lareqa: set HYBTUI_DATA_DIR to a data directory")
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
