"""CT2 -> openai-whisper conversion (random-weight round trip + the real tiny.en)."""

from __future__ import annotations

import numpy as np
import torch
import whisper

from workers.asr.convert import (
    build_checkpoint,
    convert_ct2_to_whisper,
    read_alignment_heads,
    sinusoids,
)
from workers.asr.registry import ensure_checkpoint


def test_random_model_roundtrip_is_exact(random_ct2, tmp_path):
    ct2_dir, reference, dims = random_ct2
    out = convert_ct2_to_whisper(ct2_dir / "model.bin", ct2_dir / "config.json", tmp_path / "m.pt")
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["dims"] == dims
    assert ckpt["alignment_heads"] == [[1, 0], [1, 1]]
    state = ckpt["model_state_dict"]
    assert set(state) == set(reference)  # key projections: no bias, like openai-whisper
    for name, tensor in reference.items():
        assert state[name].dtype == torch.float16, name
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0, msg=name)
    model = whisper.load_model(str(out), device="cpu")
    assert model.dims.n_text_layer == 2
    assert read_alignment_heads(out) == [[1, 0], [1, 1]]


def test_missing_encoder_positions_use_sinusoids(random_ct2, tmp_path, write_ct2):
    from workers.asr.ct2_format import load_variables

    ct2_dir, reference, _ = random_ct2
    variables = dict(load_variables(ct2_dir / "model.bin"))
    variables.pop("encoder/position_encodings/encodings")
    variables.pop("decoder/projection/weight")  # alias, re-added below
    write_ct2(
        tmp_path / "model.bin",
        variables,
        aliases={"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    ckpt = build_checkpoint(tmp_path / "model.bin")
    pos = ckpt["model_state_dict"]["encoder.positional_embedding"].float().numpy()
    np.testing.assert_allclose(pos, sinusoids(1500, 64), atol=1e-3)
    assert ckpt["alignment_heads"] == []


def test_tiny_en_converts_and_loads(models_dir):
    path = ensure_checkpoint("tiny.en")
    assert path.parent == models_dir and path.name == "tiny.en.pt"
    ckpt = torch.load(path, weights_only=True, mmap=True)
    assert ckpt["dims"] == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
        "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
        "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip
    assert ckpt["model_state_dict"]["decoder.token_embedding.weight"].dtype == torch.float16
    # CT2 stores Whisper's sinusoidal encoder positions (in fp16)
    pos = ckpt["model_state_dict"]["encoder.positional_embedding"].float().numpy()
    np.testing.assert_allclose(pos, sinusoids(1500, 384), atol=1e-3)
    model = whisper.load_model(str(path), device="cpu")
    assert not model.is_multilingual
    assert ensure_checkpoint("tiny.en") == path  # cached


def test_int8_quantized_source_is_dequantized(random_ct2, tmp_path, write_ct2):
    """An int8_float16 CT2 model (weights int8 + per-row ``weight_scale``) converts."""
    from workers.asr.ct2_format import read_model_bin

    ct2_dir, reference, _ = random_ct2
    raw = read_model_bin(ct2_dir / "model.bin")
    variables = dict(raw.variables)
    for name in [n for n in variables if "/linear_" in n and n.endswith("/weight")]:
        w = variables[name].astype(np.float32)
        scale = 127.0 / np.maximum(np.abs(w).max(axis=1), 1e-8)
        variables[name] = np.rint(w * scale[:, None]).astype(np.int8)
        variables[name + "_scale"] = scale.astype(np.float32)
    write_ct2(tmp_path / "model.bin", variables, aliases=raw.aliases)
    state = build_checkpoint(tmp_path / "model.bin")["model_state_dict"]
    assert state["decoder.blocks.0.attn.query.weight"].dtype == torch.float16
    for name in (
        "encoder.blocks.1.attn.value.weight",
        "decoder.blocks.0.cross_attn.key.weight",
        "decoder.blocks.1.mlp.2.weight",
    ):
        ref = reference[name].float()
        tol = ref.abs().max().item() / 127
        torch.testing.assert_close(state[name].float(), ref, rtol=0, atol=tol, msg=name)


def test_alignment_heads_match_openai(tiny_torch):
    """Heads from config.json are installed and equal openai-whisper's own for tiny.en."""
    import base64
    import gzip

    dump = gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS["tiny.en"]))
    official = np.frombuffer(dump, dtype=bool).reshape(4, 6)
    np.testing.assert_array_equal(tiny_torch.alignment_heads.to_dense().numpy(), official)
