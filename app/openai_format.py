"""A finished transcription in OpenAI's response formats (``json``, ``text``, ``srt``,
``verbose_json``, ``vtt``, ``diarized_json``). SRT and VTT are the platform's own
(:mod:`app.transcripts`), so ``/v1`` and ``/tasks/<id>/transcript`` agree."""

from __future__ import annotations

import math
from typing import Any

from app import transcripts

TEXT = "text/plain; charset=utf-8"


def _usage(result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(float(result.get("duration") or 0))}


def _segment(segment: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``TranscriptionSegment``; scores a result lacks (older workers) are 0."""
    return {
        "id": int(segment.get("id", 0)),
        "seek": int(segment.get("seek", 0)),
        "start": segment["start"],
        "end": segment["end"],
        "text": segment["text"],
        "tokens": list(segment.get("tokens") or []),
        "temperature": float(segment.get("temperature", 0.0)),
        "avg_logprob": float(segment.get("avg_logprob", 0.0)),
        "compression_ratio": float(segment.get("compression_ratio", 0.0)),
        "no_speech_prob": float(segment.get("no_speech_prob", 0.0)),
    }


def verbose(result: dict[str, Any], task: str, granularities: set[str]) -> dict[str, Any]:
    """``verbose_json``: ``segments`` and/or top-level ``words`` as asked."""
    segments = result.get("segments") or []
    body: dict[str, Any] = {"task": task, "language": result.get("language") or "",
                            "duration": float(result.get("duration") or 0),
                            "text": result.get("text") or ""}
    if "segment" in granularities:
        body["segments"] = [_segment(s) for s in segments]
    if "word" in granularities:
        body["words"] = [{"word": w["word"], "start": w["start"], "end": w["end"]}
                         for s in segments for w in s.get("words") or []]
    body["usage"] = _usage(result)
    return body


def diarized(result: dict[str, Any]) -> dict[str, Any]:
    """``diarized_json``: one entry per segment, with the platform's speaker label."""
    return {
        "task": "transcribe",
        "duration": float(result.get("duration") or 0),
        "text": result.get("text") or "",
        "segments": [{"type": "transcript.text.segment", "id": f"seg_{s.get('id', i)}",
                      "start": s["start"], "end": s["end"], "text": s["text"],
                      "speaker": str(s.get("speaker") or "")}
                     for i, s in enumerate(result.get("segments") or [])],
        "usage": _usage(result),
    }


def render(result: dict[str, Any], fmt: str, task: str,
           granularities: set[str]) -> tuple[dict[str, Any] | str, str]:
    """(JSON object or text, content type) of ``result`` in OpenAI's format ``fmt``."""
    if fmt == "json":
        return {"text": result.get("text") or "", "usage": _usage(result)}, "application/json"
    if fmt == "verbose_json":
        return verbose(result, task, granularities), "application/json"
    if fmt == "diarized_json":
        return diarized(result), "application/json"
    if fmt == "text":
        return transcripts.to_txt(result), TEXT
    return {"srt": transcripts.to_srt, "vtt": transcripts.to_vtt}[fmt](result), TEXT
