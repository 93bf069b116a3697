"""Real-time factor of direct ``whisper.transcribe`` vs our batched ``transcribe()``.

RTF = processing seconds / audio seconds (lower is better). Usage::

    python bench/whisper_direct.py --model tiny.en --device cpu [--seconds 30]

Prints a table and one JSON line (prefix ``RESULT ``) on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speech import COOKING, OTHER_SENTENCES, WEATHER, make_speech_clip  # noqa: E402

SCRIPT = " ".join([WEATHER, COOKING, *OTHER_SENTENCES[:4]])  # about 29 s of speech


def _timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length")
    parser.add_argument("--clip", type=Path, default=None, help="use this media file instead")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    args = parser.parse_args(argv)

    import torch
    import whisper

    from workers.asr.audio import decode_audio
    from workers.asr.transcribe import get_model, resolve_device, transcribe

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or make_speech_clip(Path(tmp) / "clip.wav", SCRIPT, args.seconds)
        audio = decode_audio(str(clip))
    audio_s = len(audio) / 16000
    model = get_model(args.model, device)
    fp16 = device.startswith("cuda")

    def sync() -> None:
        if fp16:
            torch.cuda.synchronize()

    def direct():
        out = whisper.transcribe(model, audio, fp16=fp16, verbose=None)
        sync()
        return out

    def ours(batch_size: int):
        def run():
            out = transcribe(model, audio, batch_size=batch_size)
            sync()
            return out

        return run

    rows = []
    for label, fn in (("whisper.transcribe", direct),
                      (f"ours batch={args.batch_size}", ours(args.batch_size)),
                      ("ours batch=1", ours(1))):  # fmt: skip
        fn()  # warm-up (kernels, caches)
        seconds, out = _timed(fn, args.repeat)
        rows.append((label, seconds, seconds / audio_s, out["text"].strip()))

    print(
        f"model={args.model} device={device} audio={audio_s:.1f}s "
        f"load={model.hark_load_seconds:.2f}s torch_threads={torch.get_num_threads()}"
    )
    print(f"{'method':<22} {'seconds':>8} {'RTF':>7}  text")
    for label, seconds, rtf, text in rows:
        print(f"{label:<22} {seconds:>8.2f} {rtf:>7.3f}  {text[:60]}")
    result = {
        "model": args.model, "device": device, "audio_s": round(audio_s, 2),
        "load_s": round(model.hark_load_seconds, 3), "batch_size": args.batch_size,
        "direct_s": round(rows[0][1], 3), "direct_rtf": round(rows[0][2], 4),
        "ours_s": round(rows[1][1], 3), "ours_rtf": round(rows[1][2], 4),
        "ours_b1_s": round(rows[2][1], 3), "ours_b1_rtf": round(rows[2][2], 4),
        "same_text_batched_vs_b1": rows[1][3] == rows[2][3],
    }  # fmt: skip
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main()
