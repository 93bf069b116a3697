"""Word timestamps for the ``ct2`` engine: ``Whisper.align`` (CTranslate2's cross-attention
DTW) in place of openai-whisper's ``find_alignment``, then the very post-processing of
``whisper.timing.add_word_timestamps`` (median-duration clamps, punctuation merging,
segment bounds), so both engines give words of the same shape and rules."""

from __future__ import annotations

import itertools

import numpy as np
from whisper.audio import HOP_LENGTH, SAMPLE_RATE
from whisper.timing import WordTiming, merge_punctuations
from whisper.tokenizer import Tokenizer

from workers.asr.ct2_engine import Ct2Whisper

TOKENS_PER_SECOND = SAMPLE_RATE / (2 * HOP_LENGTH)  # encoder frames a second
PREPEND = "\"'“¿([{-"
APPEND = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END = ".。!！?？"


def find_alignment(model: Ct2Whisper, tok: Tokenizer, text_tokens: list[int],
                   encoded: np.ndarray, num_frames: int) -> list[WordTiming]:
    """Words of ``text_tokens`` with their times in the window (whisper's shape)."""
    if not text_tokens:
        return []
    result = model.align(encoded, tok, text_tokens, num_frames)
    words, word_tokens = tok.split_to_word_tokens(text_tokens + [tok.eot])
    if len(word_tokens) <= 1:
        return []
    pairs = np.array(result.alignments, dtype=np.int64).reshape(-1, 2)
    text_indices, time_indices = pairs[:, 0], pairs[:, 1]
    probs = result.text_token_probs
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    starts, ends = jump_times[bounds[:-1]], jump_times[bounds[1:]]
    return [WordTiming(w, t, float(s), float(e), float(np.mean(probs[i:j])))
            for w, t, s, e, i, j in zip(words, word_tokens, starts, ends, bounds[:-1],
                                        bounds[1:], strict=False)]


def _clamp_sentence_ends(alignment: list[WordTiming], max_duration: float) -> None:
    for i in range(1, len(alignment)):
        if alignment[i].end - alignment[i].start > max_duration:
            if alignment[i].word in SENTENCE_END:
                alignment[i].end = alignment[i].start + max_duration
            elif alignment[i - 1].word in SENTENCE_END:
                alignment[i].start = alignment[i].end - max_duration


def _fit_segment(segment: dict, words: list[dict], median: float, max_duration: float,
                 last_speech: float) -> None:
    """whisper's clamps of a segment's first and last words against pauses and bounds."""
    if words[0]["end"] - last_speech > median * 4 and (
        words[0]["end"] - words[0]["start"] > max_duration
        or (len(words) > 1 and words[1]["end"] - words[0]["start"] > max_duration * 2)
    ):
        if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
            boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
            words[0]["end"] = words[1]["start"] = boundary
        words[0]["start"] = max(0, words[0]["end"] - max_duration)
    if segment["start"] < words[0]["end"] and segment["start"] - 0.5 > words[0]["start"]:
        words[0]["start"] = max(0, min(words[0]["end"] - median, segment["start"]))
    else:
        segment["start"] = words[0]["start"]
    if segment["end"] > words[-1]["start"] and segment["end"] + 0.5 < words[-1]["end"]:
        words[-1]["end"] = max(words[-1]["start"] + median, segment["end"])
    else:
        segment["end"] = words[-1]["end"]


def add_word_timestamps(*, segments: list[dict], model: Ct2Whisper, tokenizer: Tokenizer,
                        encoded: np.ndarray, num_frames: int,
                        last_speech_timestamp: float) -> None:
    """Set ``segment["words"]`` on one window's segments (as whisper's function does)."""
    if not segments:
        return
    per_segment = [[t for t in s["tokens"] if t < tokenizer.eot] for s in segments]
    alignment = find_alignment(model, tokenizer, list(itertools.chain(*per_segment)),
                               encoded, num_frames)
    durations = np.array([t.end - t.start for t in alignment])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations)) if len(durations) else 0.0)
    max_duration = median * 2
    if len(durations):
        _clamp_sentence_ends(alignment, max_duration)
    merge_punctuations(alignment, PREPEND, APPEND)
    offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
    index, last_speech = 0, last_speech_timestamp
    for segment, tokens in zip(segments, per_segment, strict=True):
        saved, words = 0, []
        while index < len(alignment) and saved < len(tokens):
            timing = alignment[index]
            if timing.word:
                words.append({"word": timing.word, "start": round(offset + timing.start, 2),
                              "end": round(offset + timing.end, 2),
                              "probability": timing.probability})
            saved += len(timing.tokens)
            index += 1
        if words:
            _fit_segment(segment, words, median, max_duration, last_speech)
            last_speech = segment["end"]
        segment["words"] = words
