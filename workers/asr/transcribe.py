"""Batched Whisper transcription on either engine (no Flask / Celery here).

Audio is cut into windows of at most 30 s (each cut placed in the quietest ~0.3 s of
the last 5 s of a window, so words are rarely split), windows are decoded in batches
(``whisper.decode``, or CTranslate2 for the ``ct2`` engine: ``workers.asr.ct2_engine``)
and the timestamp tokens of each window become segments offset by the window start.
Windows are decoded independently (no previous-text prompt), which is what makes
batching, and pooling several audios, possible; a window whose decode stopped short
(:func:`~workers.asr.segments.tail_start`) has its rest decoded in a second round.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import numpy as np
import torch
import whisper
from whisper.audio import HOP_LENGTH, SAMPLE_RATE
from whisper.timing import add_word_timestamps
from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE, Tokenizer, get_tokenizer

from core.config import worker_decode_batch
from workers.asr.audio import decode_audio
from workers.asr.decoding import EncodedAudio, decode_batch, is_silence, window_scores
from workers.asr.features import SpeechFeatures
from workers.asr.loading import (  # noqa: F401  (re-exported: callers import them here)
    Model,
    get_model,
    is_ct2,
    load_model,
    model_load_times,
    resolve_device,
)
from workers.asr.median import install as install_median_filter
from workers.asr.registry import DEFAULT_MODEL
from workers.asr.segments import assemble_result, parse_segments, tail_start, window_bounds
from workers.asr.window_pool import WindowPool, pool_for

TASKS = ("transcribe", "translate")
SILENCE_PEAK = 1e-3  # about -60 dBFS

install_median_filter()  # word alignment's median filter, 4-5x faster on CPU


def _decode_windows(model: whisper.Whisper, mels: torch.Tensor,
                    options: whisper.DecodingOptions) -> list[tuple]:
    """Encode a batch of windows once and decode it: ``[(result, encoder_output)]``.
    Decoding, its temperature fallbacks and word alignment all reuse the encoder's output
    (``whisper.decode`` takes it in place of a mel; see :class:`EncodedAudio`)."""
    with torch.no_grad():
        encoded = model.embed_audio(mels.half() if options.fp16 else mels)
        return list(zip(decode_batch(model, encoded, options), encoded, strict=True))


def window_pool(model: Model) -> WindowPool:
    """The model's :class:`~workers.asr.window_pool.WindowPool`: every thread of the
    process decodes through it, so concurrent tasks share batches (whisper installs hooks
    on the shared modules while decoding: a model never runs in two threads at once)."""
    decode = model.decode_windows if is_ct2(model) else partial(_decode_windows, model)
    return pool_for(model, decode)


@lru_cache(maxsize=64)
def _tokenizer(multilingual: bool, num_languages: int, language: str, task: str) -> Tokenizer:
    return get_tokenizer(multilingual, num_languages=num_languages, language=language, task=task)


def _mel(model: Model, chunk: np.ndarray) -> torch.Tensor:
    padded = torch.from_numpy(whisper.pad_or_trim(np.ascontiguousarray(chunk, np.float32)))
    return whisper.log_mel_spectrogram(padded, model.dims.n_mels, device=model.device)


def check_compatible(model: Model, language: str | None, task: str) -> None:
    """Raise ValueError if ``task``/``language`` cannot be served by ``model``."""
    name = getattr(model, "hark_name", None) or "this model"
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not model.is_multilingual:
        if task == "translate":
            raise ValueError(
                f"{name} is English-only and cannot translate; use a multilingual model (e.g. base)"
            )
        if language not in (None, "en"):
            raise ValueError(f"{name} is English-only; language {language!r} is not supported")
    elif language is not None:
        supported = list(LANGUAGES)[: getattr(model, "num_languages", 99)]
        if language not in supported:
            raise ValueError(f"language {language!r} is not supported by {name}")


def _add_words(model: Model, pool: WindowPool, segs: list[dict], tok: Tokenizer,
               features, num_frames: int, last_speech: float,
               probabilities: bool = True) -> None:
    """Word timestamps of one window's segments, with the engine's aligner
    (``probabilities``: each word's, else skipped where that saves work)."""
    if is_ct2(model):
        from workers.asr.ct2_words import add_word_timestamps as ct2_words

        ct2_words(segments=segs, model=model, tokenizer=tok, encoded=features,
                  num_frames=num_frames, last_speech_timestamp=last_speech)
        return
    with pool.exclusive():  # whisper installs hooks on the shared model
        add_word_timestamps(segments=segs, model=EncodedAudio(model, probabilities),
                            tokenizer=tok,
                            mel=features, num_frames=num_frames,
                            last_speech_timestamp=last_speech)


def transcribe_many(
    model: Model,
    audios: Sequence[np.ndarray],
    *,
    language: str | None = None,
    task: str = "transcribe",
    word_timestamps: bool = False,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    prompts: Sequence[str | None] | None = None,
    window_done: Callable[[int], None] | None = None,
    word_probabilities: bool = True,
) -> list[dict]:
    """Transcribe several 16 kHz mono float32 audios, pooling their windows into shared
    batches. Each result equals ``transcribe(model, audio, ...)`` for that audio.

    ``prompts``: each audio's initial prompt (or None), given to every window of it; a
    batch only holds windows with the same language and prompt. ``window_done(i)`` is
    called after each decoded window of audio ``i``. ``word_probabilities``: False when
    the words only serve diarization (their probabilities are then not computed)."""
    check_compatible(model, language, task)
    batch_size = max(1, int(batch_size))
    fp16 = model.device.type == "cuda"
    n_lang = getattr(model, "num_languages", 99)
    prompts = list(prompts) if prompts is not None else [None] * len(audios)
    windows: list[tuple[str, int, int, int]] = []  # (language, audio index, start, end)
    langs: list[str] = []
    pool = window_pool(model)
    with torch.no_grad():
        for i, audio in enumerate(audios):
            # digitally silent windows are skipped: Whisper hallucinates ("you") on them
            bounds = [
                (s, e) for s, e in window_bounds(audio) if np.abs(audio[s:e]).max() >= SILENCE_PEAK
            ]
            lang = language or "en"
            if language is None and model.is_multilingual and bounds:
                mel = _mel(model, audio[slice(*bounds[0])])
                if fp16 and not is_ct2(model):  # the encoder's fp16 weights, uncast
                    mel = mel.half()
                with pool.exclusive():
                    _, probs = model.detect_language(mel)
                lang = max(probs, key=probs.get)
            langs.append(lang)
            windows.extend((lang, i, s, e) for s, e in bounds)

        def decoding(w: tuple) -> tuple[str, str]:
            return w[0], prompts[w[1]] or ""

        windows.sort(key=decoding)  # stable: audio order kept; one language and prompt a batch
        raw: list[list[dict]] = [[] for _ in audios]
        last_speech = [0.0] * len(audios)
        done, total, shown = 0, len(windows), -1
        tails: list[tuple[str, int, int, int, float]] = []
        for round_windows in (windows, tails):  # tails: windows whose decode stopped short
            batches = []
            for _, group in itertools.groupby(round_windows, key=decoding):
                group = list(group)
                batches += [group[j : j + batch_size] for j in range(0, len(group), batch_size)]
            for batch in batches:
                lang = batch[0][0]
                tok = _tokenizer(model.is_multilingual, n_lang, lang, task)
                mels = [_mel(model, audios[w[1]][w[2] : w[3]]) for w in batch]
                options = whisper.DecodingOptions(task=task, language=lang, fp16=fp16,
                                                  prompt=prompts[batch[0][1]])
                # shared with other threads' windows of the same options (cross-task batching)
                decoded = pool.decode(mels, options, batch_size)
                for w, (res, features) in zip(batch, decoded, strict=True):
                    _, i, s, e = w[:4]
                    if is_silence(res):
                        continue
                    if len(w) == 5:
                        last_speech[i] = w[4]
                    segs = parse_segments(res.tokens, tok, (e - s) / SAMPLE_RATE)
                    for seg in segs:
                        seg.update(seek=s // HOP_LENGTH, **window_scores(res))
                        seg["start"] += s / SAMPLE_RATE
                        seg["end"] += s / SAMPLE_RATE
                    if word_timestamps and segs:
                        _add_words(model, pool, segs, tok, features, (e - s) // HOP_LENGTH,
                                   last_speech[i], word_probabilities)
                    for seg in segs:
                        seg["text"] = tok.decode(seg["tokens"])
                    raw[i].extend(segs)
                    tail = tail_start(res.tokens, tok, (e - s) / SAMPLE_RATE)
                    if round_windows is windows and tail is not None:
                        cut = s + int(round(tail * SAMPLE_RATE))
                        tails.append((w[0], i, cut, e, segs[-1]["end"] if segs else 0.0))
                        total += 1
                    if segs:
                        last_speech[i] = segs[-1]["end"]
                if window_done is not None:
                    for w in batch:
                        window_done(w[1])
                done += len(batch)
                percent = int(100 * done / total)
                if progress is not None and percent > shown:
                    progress(percent)
                    shown = percent
    if progress is not None and not windows:
        progress(100)
    return [
        assemble_result(getattr(model, "hark_name", None), len(a), lang, segs, word_timestamps)
        for a, lang, segs in zip(audios, langs, raw, strict=True)
    ]


def transcribe(
    model: Model,
    audio: np.ndarray,
    *,
    language: str | None = None,
    task: str = "transcribe",
    word_timestamps: bool = False,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    prompt: str | None = None,
    word_probabilities: bool = True,
) -> dict:
    """Transcribe one 16 kHz mono float32 audio (see module docstring); ``prompt``: the
    initial prompt every window is conditioned on; ``word_probabilities`` as in
    :func:`transcribe_many`.

    Returns ``{"text", "language", "duration", "segments": [{"id", "start", "end", "text",
    "seek", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob",
    "words"?: [{"word", "start", "end", "probability"}]}], "model"}``.
    """
    return transcribe_many(
        model,
        [audio],
        language=language,
        task=task,
        word_timestamps=word_timestamps,
        batch_size=batch_size,
        progress=progress,
        prompts=[prompt],
        word_probabilities=word_probabilities,
    )[0]


def normalize_language(language: str | None) -> str | None:
    """``"en"``, ``"English"``, ``"english"`` -> ``"en"``; None/""/"auto" -> None."""
    if language is None or str(language).strip().lower() in ("", "auto"):
        return None
    lang = str(language).strip().lower()
    lang = TO_LANGUAGE_CODE.get(lang, lang)
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    return lang


def run_transcription(
    media_path: str,
    options: dict,
    device: str = "auto",
    progress: Callable[[int], None] | None = None,
    max_seconds: float | None = None,
) -> dict:
    """Decode ``media_path`` and transcribe it; the function the Celery task calls.

    ``max_seconds``: refuse longer audio (:class:`~workers.asr.audio.MediaTooLong`).

    ``options``: ``model`` (default ``DEFAULT_MODEL``), ``language`` (None = detect),
    ``task`` (transcribe | translate), ``word_timestamps`` (bool), ``batch_size`` (int;
    default ``WORKER_DECODE_BATCH``),
    and the :class:`~workers.asr.features.SpeechFeatures` options (VAD, prompt, hotwords,
    diarization). Other keys are ignored. Raises ValueError (incl. ``MediaDecodeError`` and
    ``UnknownModelError``) for bad input.
    """
    options = options or {}
    task = options.get("task") or "transcribe"
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    language = normalize_language(options.get("language"))
    batch_size = options.get("batch_size", worker_decode_batch())
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    features = SpeechFeatures.from_options(options)
    model = get_model(options.get("model") or DEFAULT_MODEL, device)
    check_compatible(model, language, task)
    features.check_prompt(
        _tokenizer(model.is_multilingual, getattr(model, "num_languages", 99), "en", task))
    features.load_models(str(model.device))
    audio = decode_audio(media_path, max_seconds=max_seconds)
    speech, speech_map = features.speech(audio)
    words = bool(options.get("word_timestamps", False))
    result = transcribe(
        model,
        speech,
        language=language,
        task=task,
        word_timestamps=features.word_timestamps(words),
        batch_size=batch_size,
        progress=progress,
        prompt=features.prompt,
        word_probabilities=words,
    )
    return features.finish(result, audio, speech_map, str(model.device), words)
