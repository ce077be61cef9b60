"""The registry, checkpoint loading rules and sentence-transformers compatibility."""

import numpy as np
import pytest
import torch

from hybtui.errors import HybtuiError
from hybtui.modeling import encoder as models
from hybtui.modeling import me5_small

TEXTS = [
    "Wie viele Punkte gab die Verteidigung ab?",
    "The Panthers defense gave up just 308 points.",
    "นี่คือประโยคภาษาไทย",
    "短い文",
]


def test_unknown_name_suggests_close_names():
    with pytest.raises(HybtuiError, match="unknown model 'me5-smal'; did you mean me5-small"):
        models.checkpoint_dir("me5-smal")
    with pytest.raises(HybtuiError, match="did you mean labse"):
        models.checkpoint_dir("labsee")


def test_missing_path_and_non_model_directory(tmp_path):
    with pytest.raises(HybtuiError, match="does not exist"):
        models.checkpoint_dir(str(tmp_path / "no-such-model"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HybtuiError, match="no config.json"):
        models.checkpoint_dir(str(tmp_path))
    with pytest.raises(HybtuiError, match="is a file"):
        models.checkpoint_dir(str(tmp_path / "notes.txt"))


def test_hub_model_offline_names_the_model_and_the_way_out():
    with pytest.raises(HybtuiError) as err:
        models.checkpoint_dir("labse")
    message = str(err.value)
    assert "sentence-transformers/LaBSE" in message and "hybtui models prepare labse" in message
    assert "--model /path/to/a/local/checkpoint" in message


def test_tiny_is_xlmr_shaped_with_the_real_tokenizer(tiny_encoder):
    assert tiny_encoder.backbone.config.model_type == "xlm-roberta"
    assert len(tiny_encoder.tokenizer) == 250002 and tiny_encoder.tokenizer.pad_token_id == 1
    assert tiny_encoder.spec.query_prefix == "query: " and tiny_encoder.spec.pooling == "mean"


def test_encode_is_order_preserving_and_batch_independent(tiny_encoder):
    a = tiny_encoder.encode(TEXTS, "query", batch_size=1)
    b = tiny_encoder.encode(TEXTS, "query", batch_size=3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    single = tiny_encoder.encode([TEXTS[2]], "query")
    np.testing.assert_allclose(a[2], single[0], atol=1e-5)
    with torch.no_grad():  # the training path (padded batch, gradients on) gives the same vectors
        batch = tiny_encoder.tokenize(TEXTS, "query")
        np.testing.assert_allclose(tiny_encoder(**batch).numpy(), a, atol=1e-5)


def _sentence_transformers_embeddings(path, texts, prompt):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(path), device="cpu")
    return model.encode(texts, prompt_name=prompt, convert_to_numpy=True)


def test_saved_encoder_loads_in_sentence_transformers(tiny_encoder, tmp_path):
    tiny_encoder.save(tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("*.bin")), "weights must be safetensors"
    ours = tiny_encoder.encode(TEXTS, "passage")
    theirs = _sentence_transformers_embeddings(tmp_path / "ckpt", TEXTS, "passage")
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    reloaded = models.load_encoder(models.encoder_spec(str(tmp_path / "ckpt")), device="cpu")
    assert reloaded.spec.query_prefix == "query: " and reloaded.spec.passage_prefix == "passage: "
    np.testing.assert_allclose(reloaded.encode(TEXTS, "query"), tiny_encoder.encode(TEXTS, "query"), atol=1e-6)


def test_labse_style_cls_dense_normalise_round_trip(tiny_encoder, tmp_path):
    torch.manual_seed(1)
    dense = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.Tanh())
    labse_like = models.Encoder(
        tiny_encoder.backbone,
        tiny_encoder.tokenizer,
        models.EncoderSpec("labse-like", "cls", "", "", 64, True),
        [dense],
    )
    labse_like.save(tmp_path / "ckpt")
    theirs = _sentence_transformers_embeddings(tmp_path / "ckpt", TEXTS, "query")
    reloaded = models.load_encoder(models.encoder_spec(str(tmp_path / "ckpt")), device="cpu")
    assert reloaded.spec.pooling == "cls" and reloaded.dim == 16
    np.testing.assert_allclose(reloaded.encode(TEXTS, "query"), theirs, atol=1e-5)


def test_explicit_options_override_the_checkpoint(tiny_encoder, tmp_path):
    tiny_encoder.save(tmp_path / "ckpt")
    spec = models.encoder_spec(str(tmp_path / "ckpt"), pooling="cls", query_prefix="q: ")
    encoder = models.load_encoder(spec, device="cpu")
    assert encoder.spec.pooling == "cls" and encoder.spec.query_prefix == "q: "
    assert encoder.spec.passage_prefix == "passage: "  # not overridden: from the checkpoint


def test_pickled_weights_are_refused(tiny_encoder, tmp_path):
    ckpt = tmp_path / "ckpt"
    tiny_encoder.save(ckpt)
    state = {k: v.clone() for k, v in tiny_encoder.backbone.state_dict().items()}
    (ckpt / "model.safetensors").unlink()
    torch.save(state, ckpt / "pytorch_model.bin")
    with pytest.raises(HybtuiError, match="pytorch_model.bin is not read: hybtui loads safetensors weights only"):
        models.load_encoder(models.encoder_spec(str(ckpt)), device="cpu")


def test_truncated_weights_are_an_error_not_silent_garbage(tiny_encoder, tmp_path):
    ckpt = tmp_path / "ckpt"
    tiny_encoder.save(ckpt)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(HybtuiError, match="could not load model"):
        models.load_encoder(models.encoder_spec(str(ckpt)), device="cpu")


def test_corrupt_me5_small_cache_is_rebuilt(model_cache):
    target = models.prepare_me5_small()
    weights = target / "model.safetensors"
    with weights.open("r+b") as f:  # flip bytes in the middle: same size, wrong content
        f.seek(weights.stat().st_size // 2)
        f.write(b"\x00" * 64)
    assert not me5_small.is_intact(target)
    messages = []
    models.prepare_me5_small(messages.append)
    assert me5_small.is_intact(target)
    assert any("rebuilding" in m for m in messages)


def test_bad_options():
    with pytest.raises(HybtuiError, match="unknown pooling 'max'"):
        models.encoder_spec("tiny", pooling="max")
    with pytest.raises(HybtuiError, match="max-length"):
        models.encoder_spec("tiny", max_length=0)
    with pytest.raises(HybtuiError, match="CUDA is not available"):
        if torch.cuda.is_available():
            raise HybtuiError("CUDA is not available (skipped on GPU machines)")
        models.resolve_device("cuda")
