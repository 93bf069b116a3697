"""Decoding one batch of Whisper windows: quality checks, temperature fallbacks, and the
encoder output shared by decoding and word alignment (no Flask / Celery here)."""

from __future__ import annotations

import dataclasses

import torch
import whisper

FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
COMPRESSION_RATIO_THRESHOLD = 2.4
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


def is_silence(r: whisper.DecodingResult) -> bool:
    return r.no_speech_prob > NO_SPEECH_THRESHOLD and r.avg_logprob < LOGPROB_THRESHOLD


def window_scores(r: whisper.DecodingResult) -> dict[str, float]:
    """What OpenAI's ``verbose_json`` reports per segment (its window's decode)."""
    return {"temperature": float(r.temperature), "avg_logprob": float(r.avg_logprob),
            "compression_ratio": float(r.compression_ratio),
            "no_speech_prob": float(r.no_speech_prob)}


def needs_fallback(r: whisper.DecodingResult) -> bool:
    if is_silence(r):
        return False
    return r.compression_ratio > COMPRESSION_RATIO_THRESHOLD or r.avg_logprob < LOGPROB_THRESHOLD


class EncodedAudio:
    """``model`` as :func:`whisper.timing.add_word_timestamps` uses it, given a window's
    encoder output where it expects a mel: its forward runs the decoder only, so aligning
    words costs a decoder pass instead of a second encoding of the window.

    Without ``probabilities`` (the words only place speaker turns and are then dropped)
    the pass also skips the projection onto the vocabulary, ~40% of its work for tiny.en:
    the alignment reads the cross-attention weights, and the logits only for each word's
    probability, which then comes out uniform and is not reported."""

    def __init__(self, model: whisper.Whisper, probabilities: bool = True) -> None:
        self._model = model
        self._probabilities = probabilities

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def __call__(self, audio_features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        decoder = self._model.decoder
        if self._probabilities:
            return decoder(tokens, audio_features)
        x = decoder.token_embedding(tokens) + decoder.positional_embedding[: tokens.shape[-1]]
        x = x.to(audio_features.dtype)
        for block in decoder.blocks:  # their cross-attention hooks record the weights
            x = block(x, audio_features, mask=decoder.mask)
        return x.new_zeros(1, 1, 1).expand(*tokens.shape,
                                           decoder.token_embedding.num_embeddings)


def with_fallbacks(results: list, retry) -> list:
    """Replace each result that fails the quality checks by ``retry(i, temperature)`` at
    rising temperatures: the first that passes, else the most confident attempt."""
    for i, res in enumerate(results):
        if not needs_fallback(res):
            continue
        attempts = [res]
        for temperature in FALLBACK_TEMPERATURES:
            attempts.append(retry(i, temperature))
            if not needs_fallback(attempts[-1]):
                break
        if needs_fallback(attempts[-1]):  # nothing passed: keep the most confident
            attempts.sort(key=lambda r: r.avg_logprob)
        results[i] = attempts[-1]
    return results


def decode_batch(model, mels: torch.Tensor, options: whisper.DecodingOptions) -> list:
    """Decode a batch (of mels, or of their encoder output), retrying each window that
    fails the quality checks at rising temperatures."""

    def retry(i: int, temperature: float) -> whisper.DecodingResult:
        with torch.random.fork_rng(devices=[]):  # seeded: same output batched or not
            torch.manual_seed(0)
            return whisper.decode(model, mels[i], dataclasses.replace(options,
                                                                      temperature=temperature))

    return with_fallbacks(whisper.decode(model, mels, options), retry)
