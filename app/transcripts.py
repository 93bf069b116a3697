"""Rendering a transcription result as plain text, SubRip (SRT), WebVTT or JSON."""

from __future__ import annotations

import json
from typing import Any

FORMATS = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _segments(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in result.get("segments") or [] if str(s.get("text", "")).strip()]


def _cue_text(segment: dict[str, Any]) -> str:
    """A cue's text, prefixed ``[SPEAKER_00]: `` when the result was diarized (the form
    WhisperX writes)."""
    text = str(segment["text"]).strip()
    return f"[{segment['speaker']}]: {text}" if segment.get("speaker") else text


def to_txt(result: dict[str, Any]) -> str:
    return str(result.get("text", "")).strip() + "\n"


def to_srt(result: dict[str, Any]) -> str:
    blocks = []
    for number, segment in enumerate(_segments(result), start=1):
        blocks.append(f"{number}\n{_clock(segment['start'], ',')} --> "
                      f"{_clock(segment['end'], ',')}\n{_cue_text(segment)}\n")
    return "\n".join(blocks)


def to_vtt(result: dict[str, Any]) -> str:
    cues = [f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{_cue_text(s)}\n"
            for s in _segments(result)]
    return "WEBVTT\n\n" + "\n".join(cues)


def render(result: dict[str, Any], fmt: str) -> tuple[str, str]:
    """(body, content type) of ``result`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        body = json.dumps(result, ensure_ascii=False)
    else:
        body = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt}[fmt](result)
    return body, FORMATS[fmt]
