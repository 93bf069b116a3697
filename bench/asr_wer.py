"""WER of Hark's transcription on real speech (bench/corpus.py), per model and weight type.

Decodes the two workloads of ``bench.asr_peer`` (one ~109 s file, 8 files of 22-30 s) with
``transcribe``/``transcribe_many`` in this process and prints one row per (model, engine,
weights): ``--engines whisper ct2`` (ct2: ``int8`` is CTranslate2 int8, ``off`` float32).
Run: ``python -m bench.asr_wer [--models tiny.en base] [--quant off int8] [--engines ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import corpus
from bench.harness import table, write_results


def measure(model_name: str, quant: str, directory: Path, engine: str = "whisper") -> dict:
    """WER and seconds of one (model, engine, weights) on both workloads."""
    from workers.asr.transcribe import get_model, transcribe, transcribe_many
    from workers.asr.wav import read_pcm_wav

    model = get_model(model_name, "cpu", quantize=quant, engine=engine)
    long_path, long_ref = corpus.long_file(directory)
    shorts = corpus.short_files(directory)
    audio = read_pcm_wav(str(long_path))
    started = time.perf_counter()
    long_text = transcribe(model, audio, language="en")["text"]
    long_s = time.perf_counter() - started
    audios = [read_pcm_wav(str(p)) for p, _ in shorts]
    started = time.perf_counter()
    texts = [r["text"] for r in transcribe_many(model, audios, language="en")]
    short_s = time.perf_counter() - started
    pairs = [(long_ref, long_text)] + [(r, t) for (_, r), t in zip(shorts, texts, strict=True)]
    return {"model": model_name, "engine": engine, "weights": quant,
            "wer_long": corpus.wer(pairs[:1]), "wer_short": corpus.wer(pairs[1:]),
            "wer_all": corpus.wer(pairs), "long_s": long_s, "short_s": short_s}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--quant", nargs="+", default=["off", "int8"])
    parser.add_argument("--engines", nargs="+", choices=("whisper", "ct2"), default=["whisper"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hark-wer-") as tmp:
        rows = [measure(m, q, Path(tmp), e)
                for m in args.models for e in args.engines for q in args.quant]
    print(table([[r["model"], r["engine"], r["weights"], f"{100 * r['wer_long']:.2f}",
                  f"{100 * r['wer_short']:.2f}", f"{100 * r['wer_all']:.2f}",
                  r["long_s"], r["short_s"]] for r in rows],
                ["model", "engine", "weights", "WER % long", "WER % 8 short", "WER % all",
                 "long s", "8 short s"]))  # fmt: skip
    print(f"wrote {write_results('asr_wer', {'rows': rows})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
