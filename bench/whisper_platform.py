"""Platform overhead on a Whisper transcription, as a ratio, in one run.

For the same ~30 s speech clip and model, on the same machine:
  direct    our ``run_transcription`` called in this process (model already loaded)
  openai    openai-whisper's own ``whisper.transcribe`` (for reference)
  platform  POST /analyze (sync) -> completed, through a real worker (model preloaded)
Overhead = platform / direct - 1. Run: ``python -m bench.whisper_platform``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import platform, summary, table, write_results
from bench.speech import OTHER_SENTENCES, WEATHER, make_speech_clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    import whisper

    from workers.asr.audio import decode_audio
    from workers.asr.transcribe import get_model, run_transcription

    work = Path(tempfile.mkdtemp(prefix="hark-bench-"))
    clip = make_speech_clip(work / "clip.wav", " ".join((WEATHER, *OTHER_SENTENCES)),
                            seconds=args.seconds)
    audio_seconds = len(decode_audio(str(clip))) / 16000
    options = {"model": args.model}

    model = get_model(args.model, "cpu")
    run_transcription(str(clip), options, "cpu")  # warm-up
    direct, openai = [], []
    with platform(work / "platform", PRELOAD_MODELS=args.model) as bench:
        bench.worker(name="whisper", WORKER_CONCURRENCY="1")
        client = bench.app.test_client()
        through, server = [], []

        def post() -> float:
            started = time.perf_counter()
            with open(clip, "rb") as fh:
                response = client.post("/analyze?timeout=600", headers=bench.headers,
                                       data={"file": (fh, "clip.wav"), "model": args.model})
            elapsed = time.perf_counter() - started
            body = response.get_json()
            assert body["status"] == "completed", body
            server.append(_seconds(body["completed_at"]) - _seconds(body["started_at"]))
            return elapsed

        post()  # warm-up: first task on the worker
        server.clear()
        for _ in range(args.runs):  # interleave so drift hits both alike
            started = time.perf_counter()
            run_transcription(str(clip), options, "cpu")
            direct.append(time.perf_counter() - started)
            through.append(post())
            started = time.perf_counter()
            whisper.transcribe(model, str(clip), language="en", fp16=False,
                               condition_on_previous_text=False)
            openai.append(time.perf_counter() - started)

    d, p, o = (statistics.median(x) for x in (direct, through, openai))
    rows = [
        ["direct run_transcription", d, d / audio_seconds, 1.0],
        ["openai whisper.transcribe", o, o / audio_seconds, o / d],
        ["platform POST -> completed", p, p / audio_seconds, p / d],
    ]
    print(f"clip {audio_seconds:.1f} s, model {args.model}, {args.runs} runs, medians")
    print(table(rows, ["path", "seconds", "RTF", "x direct"]))
    overhead = p / d - 1
    print(f"platform overhead: {overhead:+.1%} of model time "
          f"(worker-side run {statistics.median(server):.2f} s)")
    path = write_results("whisper_platform", {
        "audio_seconds": audio_seconds, "model": args.model, "runs": args.runs,
        "direct": summary(direct), "openai": summary(openai), "platform": summary(through),
        "worker_run": summary(server), "overhead": overhead})
    print(f"wrote {path}")
    return 0


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


if __name__ == "__main__":
    raise SystemExit(main())
