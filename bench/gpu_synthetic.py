"""A large-v3-sized Whisper with random weights that says one fixed sentence per window.

Random weights decode garbage of random length (and trip the temperature fallbacks), so
their timings do not compare. This model has large-v3's shapes and does all of its work,
but its decoder's positional embedding spells a fixed token sequence: at sampled position
``k`` the residual stream is dominated by ``ALPHA`` times the embedding of the ``k``-th
token of ``<|0.00|> sentence <|30.00|> <|endoftext|>``, and the tied output projection
turns that into a near-certain prediction of that token. Every layer's output projections
are scaled by ``RESIDUAL_SCALE`` (random, not zero: zeros run faster on a GPU), so the
layers compute in full but do not disturb the spelled sequence. Greedy decoding therefore
emits exactly ``len(sentence) + 3`` tokens per 30 s window, with log-probabilities near 0
(no fallbacks) on every code path: Hark's batched ``transcribe_many``, the same at batch 1,
openai-whisper's ``transcribe``, and a worker that loads it from a checkpoint file.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np
import torch
import whisper
from whisper.model import ModelDimensions
from whisper.tokenizer import Tokenizer, get_tokenizer

# openai-whisper's large-v3 (and large-v3-turbo's encoder): 1.55 B parameters
LARGE_V3 = ModelDimensions(n_mels=128, n_audio_ctx=1500, n_audio_state=1280, n_audio_head=20,
                           n_audio_layer=32, n_vocab=51866, n_text_ctx=448, n_text_state=1280,
                           n_text_head=20, n_text_layer=32)
# tiny (multilingual) shapes, for the CPU dry run
TINY = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                       n_audio_layer=4, n_vocab=51865, n_text_ctx=448, n_text_state=384,
                       n_text_head=6, n_text_layer=4)
ALPHA = 8.0
RESIDUAL_SCALE = 1e-2
SAMPLE_RATE = 16000
TEXT = ("Call me Ishmael. Some years ago, never mind how long precisely, having little or no "
        "money in my purse, and nothing particular to interest me on shore, I thought I would "
        "sail about a little and see the watery part of the world. It is a way I have of "
        "driving off the spleen and regulating the circulation. Whenever I find myself growing "
        "grim about the mouth; whenever it is a damp, drizzly November in my soul; whenever I "
        "find myself involuntarily pausing before coffin warehouses, and bringing up the rear "
        "of every funeral I meet; then, I account it high time to get to sea as soon as I can.")


def tokenizer_for(model: whisper.Whisper) -> Tokenizer:
    return get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                         language="en", task="transcribe")


def sentence(tok: Tokenizer, n_tokens: int) -> list[int]:
    """The first ``n_tokens`` text tokens of ``TEXT`` that decoding never suppresses."""
    banned = set(tok.non_speech_tokens) | {tok.encode(" ")[0]}
    ids = [t for t in tok.encode(" " + TEXT) if t not in banned]
    if n_tokens > len(ids):
        raise ValueError(f"at most {len(ids)} tokens per window")
    return ids[:n_tokens]


def build(dims: ModelDimensions, n_tokens: int, device: str, seed: int = 0) -> whisper.Whisper:
    """The model, on ``device`` (fp16 on CUDA), its weights made there."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = whisper.Whisper(dims)
    with torch.no_grad():
        for block in (*model.encoder.blocks, *model.decoder.blocks):
            outs = [block.attn.out, block.mlp[2]]
            if block.cross_attn is not None:
                outs.append(block.cross_attn.out)
            for linear in outs:
                linear.weight.mul_(RESIDUAL_SCALE)
                linear.bias.mul_(RESIDUAL_SCALE)
        decoder = model.decoder
        decoder.positional_embedding.normal_(0.0, 0.02)  # whisper leaves it uninitialised
        tok = tokenizer_for(model)
        start = len(tok.sot_sequence) - 1  # the last prompt position predicts the first token
        for k, token in enumerate(spelled(tok, n_tokens)):
            decoder.positional_embedding[start + k] = ALPHA * decoder.token_embedding.weight[token]
    if device.startswith("cuda"):
        from workers.asr.loading import half_weights

        model = half_weights(model)  # as a worker loads it
    model.eval()
    model.hark_name = f"synthetic-{dims.n_text_state}x{dims.n_text_layer}"
    return model


def spelled(tok: Tokenizer, n_tokens: int) -> list[int]:
    """Every token a window decodes, end of text included."""
    return [tok.timestamp_begin, *sentence(tok, n_tokens), tok.timestamp_begin + 1500, tok.eot]


def expected_text(model: whisper.Whisper, n_tokens: int) -> str:
    tok = tokenizer_for(model)
    return tok.decode(sentence(tok, n_tokens)).strip()


def compression_ratio(text: str) -> float:
    """As whisper computes it: must stay under 2.4 or a window falls back."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def save(model: whisper.Whisper, path: Path) -> Path:
    """A checkpoint ``whisper.load_model`` (and so a worker's registry) reads, in fp16 like
    the official ones."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"dims": dataclasses.asdict(model.dims), "model_state_dict": state}, path)
    return path


def clips(source: np.ndarray, n: int, seconds: float = 30.0) -> list[np.ndarray]:
    """``n`` clips of ``seconds`` cut from ``source`` (cyclically, 7 s apart)."""
    size, step = int(seconds * SAMPLE_RATE), 7 * SAMPLE_RATE
    tiled = np.tile(source, int(np.ceil((n * step + size) / len(source))) + 1)
    return [np.ascontiguousarray(tiled[i * step : i * step + size]) for i in range(n)]


def measure(model: whisper.Whisper, audios: list[np.ndarray], n_tokens: int,
            batches: tuple[int, ...], single: int, clock) -> dict:
    """Hark's ``transcribe_many`` at each batch size over ``audios``, and batch 1 and
    openai-whisper's ``transcribe`` over the first ``single`` of them: audio seconds per
    second, tokens per second; each run checked to say exactly the spelled sentence."""
    from workers.asr.transcribe import transcribe_many

    want = expected_text(model, n_tokens)
    per_window = len(spelled(tokenizer_for(model), n_tokens))
    fp16 = model.device.type == "cuda"

    def figures(seconds: float, texts: list[str], files: list[np.ndarray]) -> dict:
        wrong = [t for t in texts if t.strip() != want]
        if wrong:
            raise AssertionError(f"synthetic model said {wrong[0][:80]!r}, not {want[:80]!r}")
        audio_s = sum(len(a) for a in files) / SAMPLE_RATE
        return {"files": len(files), "wall_s": round(seconds, 3),
                "audio_s_per_s": round(audio_s / seconds, 2),
                "tokens_per_s": round(per_window * len(files) / seconds, 1)}

    def hark(files: list[np.ndarray], batch: int) -> dict:
        seconds, results = clock(transcribe_many, model, files, language="en", batch_size=batch)
        return figures(seconds, [r["text"] for r in results], files)

    def openai(files: list[np.ndarray]) -> dict:
        def run() -> list[str]:
            return [whisper.transcribe(model, a, language="en", fp16=fp16)["text"] for a in files]

        seconds, texts = clock(run)
        return figures(seconds, texts, files)

    hark(audios[: min(len(audios), max(batches))], max(batches))  # warm-up: kernels, plans
    out = {"model": model.hark_name, "device": str(model.device), "fp16": fp16,
           "tokens_per_window": per_window,
           "compression_ratio": round(compression_ratio(want), 2),
           "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
           "hark_batch_1": hark(audios[:single], 1),
           "openai_transcribe": openai(audios[:single])}
    for batch in (b for b in batches if b > 1):
        out[f"hark_batch_{batch}"] = hark(audios, batch)
    top = out[f"hark_batch_{max(batches)}"]["audio_s_per_s"]
    out["batched_vs_batch_1"] = round(top / out["hark_batch_1"]["audio_s_per_s"], 2)
    out["batched_vs_openai"] = round(top / out["openai_transcribe"]["audio_s_per_s"], 2)
    return out
