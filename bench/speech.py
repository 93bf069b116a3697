"""Synthetic speech clips for tests and benchmarks (espeak-ng + ffmpeg, no torch)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from workers.asr.audio import decode_audio, ffmpeg_binary

SAMPLE_RATE = 16000
VOICE = "en-us"  # tiny.en understands this voice best at a slightly slow rate
RATE_WPM = 140
GAP_S = 0.4

WEATHER = "The weather today is sunny and warm, with a light breeze from the west."
COOKING = "I like to cook pasta with tomatoes, garlic and fresh basil."
OTHER_SENTENCES = (
    "The train to the mountains leaves the station at nine in the morning.",
    "My neighbor plants roses and tulips in her garden every spring.",
    "The library closes early on Sundays, so please return your books on time.",
    "Our team won the football match after a very exciting second half.",
    "Please remember to turn off the lights when you leave the office.",
)


def espeak_available() -> bool:
    """True if ``espeak-ng`` is on PATH."""
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, voice: str = VOICE, rate: int = RATE_WPM) -> np.ndarray:
    """Speak ``text`` with espeak-ng; returns 16 kHz mono float32 samples."""
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(raw), text],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return decode_audio(str(raw), SAMPLE_RATE)


def write_audio(path: str | Path, samples: np.ndarray) -> Path:
    """Write 16 kHz mono samples; the extension picks the format (wav, mp3, flac, ogg...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    wav = path if path.suffix.lower() == ".wav" else path.with_suffix(".tmp.wav")
    with wave.open(str(wav), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(SAMPLE_RATE)
        fh.writeframes(pcm.tobytes())
    if wav != path:
        try:
            subprocess.run(
                [ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", "-i", str(wav),
                 str(path)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        finally:
            wav.unlink(missing_ok=True)
    return path


def make_speech_clip(
    path: str | Path, text: str, seconds: float | None = None, *, voice: str = VOICE
) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path`` (format from the extension).

    With ``seconds``, the utterance is repeated (0.4 s gaps, never cut mid-word) as many
    times as fit, at least once, then padded with silence to exactly ``seconds``.
    ``voice`` is an espeak-ng voice (``en-us``, ``es``, ``fr``...).
    """
    speech = synthesize(text, voice=voice)
    if seconds is None:
        return write_audio(path, speech)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    target = int(seconds * SAMPLE_RATE)
    pieces, length = [speech], len(speech)
    while length + len(gap) + len(speech) <= target:
        pieces += [gap, speech]
        length += len(gap) + len(speech)
    audio = np.concatenate(pieces)
    audio = np.pad(audio, (0, max(0, target - len(audio))))
    return write_audio(path, audio)


def words_of(text: str) -> set[str]:
    """Lower-cased words of ``text`` with surrounding punctuation stripped."""
    return {w.strip(".,!?;:\"'()-").lower() for w in text.split()} - {""}
