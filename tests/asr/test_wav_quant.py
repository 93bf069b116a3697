"""PCM WAV without ffmpeg, int8 weights, and the real-speech corpus with its WER."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from workers.asr import audio as audio_mod
from workers.asr.wav import read_pcm_wav, resample


def _write(path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2):
    ints = np.round(samples * (2 ** (8 * width - 1) - 1)).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints.ravel())
    else:
        raw = ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(channels)
        fh.setsampwidth(width)
        fh.setframerate(rate)
        fh.writeframes(raw)
    return path


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_resample_keeps_a_tone_and_removes_what_is_above_nyquist(rate):
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    alias = 0.3 * np.sin(2 * np.pi * 11000 * t) if rate > 22050 else 0
    out = resample((tone + alias).astype(np.float32), rate, 16000)
    assert len(out) == 16000
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 1e-3


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_widths_and_stereo_decode_without_ffmpeg(tmp_path, monkeypatch, width):
    t = np.arange(24000) / 24000
    left, right = 0.4 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 300 * t)
    path = _write(tmp_path / "s.wav", np.stack([left, right], 1), 24000, 2, width)
    monkeypatch.setattr(audio_mod, "ffmpeg_binary", _no_ffmpeg)
    out = audio_mod.decode_audio(str(path))
    assert out.dtype == np.float32 and len(out) == 16000
    expected = 0.3 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 0.02  # 8-bit: coarse steps
    assert audio_mod.probe_duration(str(path)) == pytest.approx(1.0)


def _no_ffmpeg() -> str:
    raise RuntimeError("ffmpeg not found on PATH and imageio-ffmpeg not installed")


def test_without_ffmpeg_other_formats_are_a_clear_400(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_mod, "ffmpeg_binary", _no_ffmpeg)
    fake = tmp_path / "x.mp3"
    fake.write_bytes(b"ID3\x03\x00" + bytes(range(256)) * 8)
    with pytest.raises(audio_mod.MediaDecodeError, match="reads only PCM WAV"):
        audio_mod.decode_audio(str(fake))
    assert audio_mod.probe_duration(str(fake)) is None


def test_wav_limit_and_non_pcm_fall_through(tmp_path):
    path = _write(tmp_path / "long.wav", np.zeros(16000 * 5), 16000)
    with pytest.raises(audio_mod.MediaTooLong):
        audio_mod.decode_audio(str(path), max_seconds=3)
    assert len(read_pcm_wav(str(path), max_seconds=1)) == 2 * 16000  # reads limit + 1 s
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x03\x00" * 20)
    assert read_pcm_wav(str(tmp_path / "junk.wav")) is None  # float / broken: ffmpeg's job


def test_int8_swaps_every_whisper_linear_and_the_logits(models_dir, clips):
    from whisper.model import Linear as WhisperLinear

    from workers.asr.quantize import quantized_linear_count
    from workers.asr.transcribe import load_model, transcribe

    model = load_model("tiny.en", "cpu", quantize="int8")
    assert not any(isinstance(m, WhisperLinear) for m in model.modules())
    # 4 attention + 2 MLP per encoder block, 8 + 2 per decoder block, plus the logits
    assert quantized_linear_count(model) == 4 * 6 + 4 * 10 + 1
    text = transcribe(model, audio_mod.decode_audio(str(clips["weather"])))["text"].lower()
    assert "sunny" in text and "breeze" in text  # int8 tiny.en mishears "the weather"


def test_quantize_mode_resolution(monkeypatch):
    from workers.asr.registry import quantize_mode

    monkeypatch.delenv("WHISPER_QUANTIZE", raising=False)
    assert quantize_mode("tiny.en", "cpu") == "off"
    monkeypatch.setenv("WHISPER_QUANTIZE", "int8")
    assert quantize_mode("tiny.en", "cpu") == "int8"
    assert quantize_mode("tiny.en", "cuda:0") == "off"
    assert quantize_mode("tiny.en", "cpu", "off") == "off"
    with pytest.raises(ValueError, match="quantize must be one of"):
        quantize_mode("tiny.en", "cpu", "int4")


def test_corpus_references_and_wer(tmp_path):
    corpus = pytest.importorskip("bench.corpus")
    try:
        clips = corpus.clips()
        path, reference = corpus.long_file(tmp_path)
    except corpus.CorpusMissing:
        pytest.skip("moonshine-voice (the speech corpus) not installed")
    assert 105 < len(read_pcm_wav(str(path))) / 16000 < 115
    one = corpus.normalize(corpus.TWO_CITIES) + corpus.normalize(corpus.BECKETT)
    assert corpus.normalize(reference) == one * 2
    shorts = corpus.short_files(tmp_path)
    assert all(len(read_pcm_wav(str(p))) <= 30 * 16000 for p, _ in shorts)
    assert {s for c in clips.values() for s in c.speakers} >= {"nagg", "nell", "dickens_reader"}
    assert corpus.edits("The best of times, Mr. Smith", "the best of time mister smith") == (1, 6)
    assert corpus.wer([("a b c d", "a b c d"), ("a b", "a x y")]) == pytest.approx(2 / 6)
