"""ffmpeg decoding: formats, video containers, durations, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from workers.asr.audio import MediaDecodeError, decode_audio, ffmpeg_binary, probe_duration


def test_import_does_not_pull_torch():
    code = (
        "import sys, workers.asr, workers.asr.audio, workers.asr.registry, "
        "workers.asr.ct2_format, workers.asr.segments; assert 'torch' not in sys.modules "
        "and 'whisper' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", ["weather", "mp3", "flac", "ogg", "mp4", "mkv", "webm"])
def test_formats_decode(clips, kind):
    ref = decode_audio(str(clips["weather"]))
    audio = decode_audio(str(clips[kind]))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - len(ref)) < 0.15 * 16000  # encoder padding differs slightly
    assert 0.05 < np.abs(audio).max() <= 1.0
    duration = probe_duration(str(clips[kind]))
    assert duration is not None and duration > len(ref) / 16000 - 0.2


def test_errors_are_clear(tmp_path, clips):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaDecodeError, match="file is empty"):
        decode_audio(str(empty))
    text = tmp_path / "notes.txt"
    text.write_text("just some text, not audio\n" * 50)
    with pytest.raises(MediaDecodeError, match="file is text"):
        decode_audio(str(text))
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(MediaDecodeError, match="unrecognized or corrupt"):
        decode_audio(str(corrupt))
    with pytest.raises(MediaDecodeError, match="not found"):
        decode_audio(str(tmp_path / "missing.wav"))
    silent_video = tmp_path / "novideo.mp4"
    subprocess.run(
        [
            ffmpeg_binary(),
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=32x32:r=5",
            "-t",
            "1",
            str(silent_video),
        ],
        check=True,
    )
    with pytest.raises(MediaDecodeError, match="no audio stream"):
        decode_audio(str(silent_video))
    assert probe_duration(str(empty)) is None and probe_duration(str(text)) is None


def test_url_like_paths_stay_local(tmp_path):
    with pytest.raises(MediaDecodeError, match="not found"):
        decode_audio("http://127.0.0.1:9/x.mp3")


def test_decoding_stops_past_the_length_limit(clips):
    from workers.asr.audio import MediaTooLong

    seconds = len(decode_audio(str(clips["weather"]))) / 16000
    with pytest.raises(MediaTooLong, match="the limit is 1 s"):
        decode_audio(str(clips["weather"]), max_seconds=1.0)
    allowed = decode_audio(str(clips["weather"]), max_seconds=seconds + 5)
    assert abs(len(allowed) / 16000 - seconds) < 0.01


def test_worker_refuses_media_over_max_media_seconds(clips, monkeypatch):
    """URL media is only measured by the worker: the decode stops and the task fails."""
    import uuid
    from dataclasses import replace

    from core.config import Settings
    from workers import analyze, context
    from workers.asr.audio import MediaTooLong
    from workers.runner import TaskContext

    monkeypatch.setattr(context, "settings", lambda: replace(Settings(), max_media_seconds=1.0))
    monkeypatch.setattr(context, "database", lambda: None)
    monkeypatch.setattr(analyze, "fetch_media", lambda *_args: clips["weather"])
    ctx = TaskContext(task_id=uuid.uuid4(), endpoint="/analyze", owner="o", device="cpu",
                      worker="w", data={"media": {"url": "http://example.com/a.wav"}})
    with pytest.raises(MediaTooLong, match="the limit is 1 s"):
        analyze.transcribe_media(ctx)
