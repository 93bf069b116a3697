"""Shared fixtures for the ASR layer: speech clips (espeak-ng) and converted models.

Converted checkpoints go to one session-scoped temporary ``MODELS_DIR`` so each model
is converted once per test run.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.speech import (  # noqa: E402
    COOKING,
    OTHER_SENTENCES,
    WEATHER,
    espeak_available,
    make_speech_clip,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~20 s")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("models")
    mp = pytest.MonkeyPatch()
    mp.setenv("MODELS_DIR", str(path))
    mp.delenv("MODELS_REGISTRY", raising=False)
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Speech clips in several formats; ``long`` is > 30 s (weather, cooking, repeated)."""
    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    d = tmp_path_factory.mktemp("clips")
    out = {
        "weather": make_speech_clip(d / "weather.wav", WEATHER),
        "cooking": make_speech_clip(d / "cooking.wav", COOKING),
    }
    for ext in ("mp3", "flac", "ogg"):
        out[ext] = make_speech_clip(d / f"weather.{ext}", WEATHER)
    both = d / "both.wav"
    make_speech_clip(both, f"{WEATHER} {COOKING}")
    long = d / "long.wav"  # > 30 s of distinct sentences, concatenated with ffmpeg
    parts = [both] + [make_speech_clip(d / f"s{i}.wav", t) for i, t in enumerate(OTHER_SENTENCES)]
    inputs = [arg for p in parts for arg in ("-i", str(p))]
    graph = "".join(f"[{i}:a]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=0:a=1"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            graph,
            str(long),
        ],
        check=True,
    )
    out["both"], out["long"] = both, long
    for ext, vcodec, acodec in (
        ("mp4", "libx264", "aac"),
        ("mkv", "libx264", "libopus"),
        ("webm", "libvpx", "libopus"),
    ):
        video = d / f"video.{ext}"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             "color=c=blue:s=64x64:r=10", "-i", str(out["weather"]), "-shortest",
             "-c:v", vcodec, "-c:a", acodec, str(video)],
            check=True,
        )  # fmt: skip
        out[ext] = video
    return out


@pytest.fixture(params=("whisper", "ct2"))  # workers.asr.registry.ENGINES
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, models_dir: Path):
    """Each Whisper engine in turn; also its ``WHISPER_ENGINE`` (for ``run_transcription``)."""
    if request.param == "ct2":
        pytest.importorskip("ctranslate2", reason="the ct2 extra is not installed")
    monkeypatch.setenv("WHISPER_ENGINE", request.param)
    return request.param


@pytest.fixture(scope="session")
def tiny_torch(models_dir: Path):
    """tiny.en on openai-whisper (torch-only tests: hooks on its modules, its weights)."""
    from workers.asr.transcribe import get_model

    return get_model("tiny.en", "cpu", engine="whisper")


@pytest.fixture
def tiny(engine: str):
    """tiny.en on each engine (models are cached per process: loaded once each)."""
    from workers.asr.transcribe import get_model

    return get_model("tiny.en", "cpu", engine=engine)


@pytest.fixture
def base(engine: str):
    from workers.asr.transcribe import get_model

    return get_model("base", "cpu", engine=engine)


_DTYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


def write_ct2_bin(
    path: Path,
    variables: dict,
    aliases: dict | None = None,
    spec: str = "WhisperSpec",
    revision: int = 3,
) -> Path:
    """Minimal CTranslate2 model.bin writer (mirrors ModelSpec._serialize, version 6).

    Values are numpy arrays; a ``("bfloat16", uint16_array)`` tuple writes raw bfloat16.
    """

    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = [struct.pack("<I", 6), string(spec), struct.pack("<II", revision, len(variables))]
    for name, value in sorted(variables.items()):
        dtype = "float32"
        if isinstance(value, tuple):
            dtype, value = value
        else:
            dtype = str(value.dtype)
        out += [string(name), struct.pack("<B", value.ndim)]
        out += [struct.pack("<I", d) for d in value.shape]
        raw = value.astype(value.dtype.newbyteorder("<")).tobytes()
        out += [struct.pack("<BI", _DTYPE_IDS[dtype], len(raw)), raw]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in sorted(aliases.items()):
        out += [string(alias), string(target)]
    path.write_bytes(b"".join(out))
    return path


def whisper_to_ct2(state: dict, dims: dict) -> dict:
    """Inverse of the converter's mapping: openai-whisper state dict -> CT2 variables."""
    import numpy as np

    def a(name):
        return state[name].detach().cpu().numpy()

    v = {}

    def lin(dst, src, bias=True):
        v[f"{dst}/weight"] = a(f"{src}.weight")
        v[f"{dst}/bias"] = (
            a(f"{src}.bias")
            if bias
            else np.zeros(v[f"{dst}/weight"].shape[0], a(f"{src}.weight").dtype)
        )

    def ln(dst, src):
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = a(f"{src}.weight"), a(f"{src}.bias")

    def fused(dst, srcs):
        ws = [a(f"{s}.weight") for s in srcs]
        bs = [
            a(f"{s}.bias") if f"{s}.bias" in state else np.zeros(w.shape[0], w.dtype)
            for s, w in zip(srcs, ws, strict=True)
        ]
        v[f"{dst}/weight"], v[f"{dst}/bias"] = np.concatenate(ws), np.concatenate(bs)

    for side, n in (("encoder", dims["n_audio_layer"]), ("decoder", dims["n_text_layer"])):
        for i in range(n):
            s, d = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            fused(
                f"{s}/self_attention/linear_0", [f"{d}.attn.{x}" for x in ("query", "key", "value")]
            )
            lin(f"{s}/self_attention/linear_1", f"{d}.attn.out")
            ln(f"{s}/self_attention/layer_norm", f"{d}.attn_ln")
            if side == "decoder":
                lin(f"{s}/attention/linear_0", f"{d}.cross_attn.query")
                fused(f"{s}/attention/linear_1", [f"{d}.cross_attn.key", f"{d}.cross_attn.value"])
                lin(f"{s}/attention/linear_2", f"{d}.cross_attn.out")
                ln(f"{s}/attention/layer_norm", f"{d}.cross_attn_ln")
            lin(f"{s}/ffn/linear_0", f"{d}.mlp.0")
            lin(f"{s}/ffn/linear_1", f"{d}.mlp.2")
            ln(f"{s}/ffn/layer_norm", f"{d}.mlp_ln")
        v[f"{side}/num_heads"] = np.array(
            dims["n_audio_head" if side == "encoder" else "n_text_head"], np.int16
        )
    lin("encoder/conv1", "encoder.conv1")
    lin("encoder/conv2", "encoder.conv2")
    v["encoder/position_encodings/encodings"] = a("encoder.positional_embedding")
    ln("encoder/layer_norm", "encoder.ln_post")
    v["decoder/embeddings/weight"] = a("decoder.token_embedding.weight")
    v["decoder/position_encodings/encodings"] = a("decoder.positional_embedding")
    ln("decoder/layer_norm", "decoder.ln")
    v["decoder/activation"] = np.array(3, np.int8)
    return v


RANDOM_DIMS = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 64, "n_audio_head": 2,
    "n_audio_layer": 2, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 64,
    "n_text_head": 2, "n_text_layer": 2,
}  # fmt: skip


@pytest.fixture(scope="session")
def write_ct2():
    """The :func:`write_ct2_bin` helper (a fixture, so tests need no conftest import)."""
    return write_ct2_bin


@pytest.fixture(scope="session")
def random_ct2(tmp_path_factory: pytest.TempPathFactory):
    """A random-weight (English-only) Whisper exported to CT2 format: plumbing tests only.

    Returns ``(ct2_dir, reference_state_dict_fp16, dims)``.
    """
    import json

    import torch
    import whisper

    torch.manual_seed(0)
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**RANDOM_DIMS))
    with torch.no_grad():  # openai-whisper leaves it torch.empty: garbage, sometimes NaN
        model.decoder.positional_embedding.normal_()
    state = {k: t.half() for k, t in model.state_dict().items()}
    d = tmp_path_factory.mktemp("random_ct2")
    variables = whisper_to_ct2(state, RANDOM_DIMS)
    write_ct2_bin(
        d / "model.bin",
        variables,
        aliases={"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    (d / "config.json").write_text(json.dumps({"alignment_heads": [[1, 0], [1, 1]]}))
    return d, state, RANDOM_DIMS
