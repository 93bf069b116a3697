"""CTranslate2 model.bin reader: dtypes, quantization scales, aliases, split files."""

from __future__ import annotations

import numpy as np
import pytest

from workers.asr.ct2_format import CT2FormatError, load_variables, read_model_bin


def test_roundtrip_dtypes_aliases_and_quantization(tmp_path, write_ct2):
    rng = np.random.default_rng(0)
    w32 = rng.standard_normal((4, 3)).astype(np.float32)
    w16 = w32.astype(np.float16)
    scale = (127.0 / np.abs(w32).max(axis=1)).astype(np.float32)
    q8 = np.rint(w32 * scale[:, None]).astype(np.int8)
    s16 = np.float32(2**10 / np.abs(w32).max())
    q16 = np.rint(w32 * s16).astype(np.int16)
    bf16 = (w32.view(np.uint32) >> 16).astype(np.uint16)
    path = write_ct2(tmp_path / "model.bin", {
        "a/f32": w32, "a/f16": w16, "a/q8": q8, "a/q8_scale": scale,
        "a/q16": q16, "a/q16_scale": np.array(s16), "a/bf16": ("bfloat16", bf16),
        "a/heads": np.array(6, np.int16), "a/i32": np.arange(3, dtype=np.int32),
    }, aliases={"b/alias": "a/f16"})  # fmt: skip

    raw = read_model_bin(path)
    assert (raw.version, raw.spec, raw.revision) == (6, "WhisperSpec", 3)
    assert raw.variables["a/q8"].dtype == np.int8 and "a/q8_scale" in raw.variables
    assert raw.aliases == {"b/alias": "a/f16"}

    v = load_variables(path)
    assert "a/q8_scale" not in v and "a/q16_scale" not in v
    np.testing.assert_array_equal(v["a/f32"], w32)
    assert v["a/f16"].dtype == np.float16 and v["b/alias"] is v["a/f16"]
    np.testing.assert_allclose(v["a/q8"], w32, atol=np.abs(w32).max() / 100)
    np.testing.assert_allclose(v["a/q16"], w32, atol=1e-2)
    np.testing.assert_allclose(v["a/bf16"], w32, rtol=1e-2)
    assert int(v["a/heads"]) == 6 and v["a/i32"].tolist() == [0, 1, 2]


def test_split_parts_are_concatenated(tmp_path, write_ct2):
    data = write_ct2(tmp_path / "model.bin", {"x": np.arange(1000, dtype=np.float32)})
    blob = data.read_bytes()
    parts = []
    for i, chunk in enumerate((blob[:100], blob[100:2000], blob[2000:]), start=1):
        parts.append(tmp_path / f"model.bin.part{i}")
        parts[-1].write_bytes(chunk)
    v = load_variables(parts)
    np.testing.assert_array_equal(v["x"], np.arange(1000, dtype=np.float32))


def test_truncated_or_foreign_file_raises(tmp_path, write_ct2):
    data = write_ct2(tmp_path / "model.bin", {"x": np.ones(64, np.float32)}).read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-10])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_model_bin(tmp_path / "cut.bin")
    (tmp_path / "foreign.bin").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(CT2FormatError):
        read_model_bin(tmp_path / "foreign.bin")
