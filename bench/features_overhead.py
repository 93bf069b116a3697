"""What VAD and diarization add to warm tiny.en transcription of a 2-minute clip (CPU).

The clip is real speech: the two-speaker call of :mod:`bench.conversation` four times
over (120 s). A second, sparse clip (20 s of that speech in 2 minutes of quiet room
noise) shows what VAD saves when most of a recording is not speech. Each configuration
runs once to warm up (models loaded), then ``--runs`` rounds run every configuration once,
in turn; each configuration's median is reported.

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


def timed(path: Path, configs: dict[str, dict], runs: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each configuration, run round-robin (one run of
    each per round, after one warm-up each) so that this host's drift hits all alike;
    CPU time (all threads) is steadier on a shared host."""
    opts = {name: {"model": "tiny.en", **options} for name, options in configs.items()}
    for options in opts.values():
        run_transcription(str(path), options, "cpu")  # warm-up (models and caches)
    wall: dict[str, list[float]] = {name: [] for name in opts}
    cpu: dict[str, list[float]] = {name: [] for name in opts}
    for _ in range(runs):
        for name, options in opts.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run_transcription(str(path), options, "cpu")
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]))
            for name in opts}


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
            chosen = {name: options for name, options in configs.items() if name in wanted}
            medians = timed(paths[clip], chosen, args.runs)
            base = next(iter(medians.values()), None)
            for name, (wall, cpu) in medians.items():
                print(f"{clip:<7} {name:<18} {wall:7.2f} {wall / base[0] - 1:+9.1%} "
                      f"{cpu:7.2f} {cpu / base[1] - 1:+9.1%}", flush=True)
                if clip == "dense" and name == "vad + diarize":
                    print(f"VAD + diarization add {cpu / base[1] - 1:+.1%} CPU time to plain "
                          "decoding (target <= +25%)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
