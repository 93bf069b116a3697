"""What VAD and diarization add to warm tiny.en transcription of a 2-minute clip (CPU).

The clip is real speech: the two-speaker call of :mod:`bench.conversation` four times
over (120 s). A second, sparse clip (20 s of that speech in 2 minutes of quiet room
noise) shows what VAD saves when most of a recording is not speech. Each configuration
runs ``--runs`` times after a warm-up (models loaded); the median is reported.

    python -m bench.features_overhead [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.conversation import sample_dir
from bench.speech import write_audio
from workers.asr.audio import decode_audio
from workers.asr.transcribe import get_model, run_transcription

CONFIGS = {
    "plain (vad off)": {"vad": False},
    "vad": {"vad": True},
    "diarize (vad off)": {"vad": False, "diarize": True},
    "vad + diarize": {"vad": True, "diarize": True},
}


def clips(folder: Path) -> dict[str, Path]:
    source = sample_dir()
    if source is None:
        sys.exit("needs the test recording: pip install --no-deps pyannote.audio==4.0.7")
    speech = decode_audio(str(source / "sample.wav"))
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 0.003, 120 * 16000).astype(np.float32)
    sparse = quiet.copy()
    sparse[40 * 16000 : 40 * 16000 + 20 * 16000] += speech[8 * 16000 : 28 * 16000]
    return {"dense": write_audio(folder / "dense.wav", np.tile(speech, 4)),
            "sparse": write_audio(folder / "sparse.wav", sparse)}


def timed(path: Path, options: dict, runs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds; CPU time (all threads) is steadier on a shared host."""
    opts = {"model": "tiny.en", **options}
    run_transcription(str(path), opts, "cpu")  # warm-up (models and caches)
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        run_transcription(str(path), opts, "cpu")
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", action="append", choices=list(CONFIGS),
                        help="run only these configurations (repeatable)")
    args = parser.parse_args(argv)
    wanted = set(args.config or CONFIGS)
    get_model("tiny.en", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        paths = clips(Path(tmp))
        print(f"{'clip':<7} {'configuration':<18} {'wall s':>7} {'vs plain':>9} "
              f"{'CPU s':>7} {'vs plain':>9}")
        for clip, configs in (("dense", CONFIGS), ("sparse", dict(list(CONFIGS.items())[:2]))):
            base = None
            for name, options in configs.items():
                if name not in wanted:
                    continue
                wall, cpu = timed(paths[clip], options, args.runs)
                base = base or (wall, cpu)
                print(f"{clip:<7} {name:<18} {wall:7.2f} {wall / base[0] - 1:+9.1%} "
                      f"{cpu:7.2f} {cpu / base[1] - 1:+9.1%}", flush=True)
                if clip == "dense" and name == "vad + diarize":
                    print(f"VAD + diarization add {cpu / base[1] - 1:+.1%} CPU time to plain "
                          "decoding (target <= +25%)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
