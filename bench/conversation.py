"""A real two-person conversation with reference speaker turns, and the diarization error
rate (DER) of a result against it.

The recording is the 30 s telephone call (two women, "Diane in New Jersey" and "Sheila
in Texas") that ships, with its RTTM reference, in the ``pyannote.audio`` wheel as
``pyannote/audio/sample/`` (MIT). Only the files are read; the package is installed
with ``--no-deps`` and never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

PACKAGE = "pyannote.audio"
FRAME_S = 0.01


def sample_dir() -> Path | None:
    """``pyannote/audio/sample`` of the installed wheel, or None."""
    spec = importlib.util.find_spec("pyannote")  # the namespace package: nothing runs
    for root in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(root) / "audio" / "sample"
        if (folder / "sample.wav").is_file() and (folder / "sample.rttm").is_file():
            return folder
    return None


def reference_turns(rttm: Path) -> list[tuple[float, float, str]]:
    """``(start, end, speaker)`` of each RTTM ``SPEAKER`` line."""
    turns = []
    for line in rttm.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, length = float(parts[3]), float(parts[4])
            turns.append((start, start + length, parts[7]))
    return turns


def _frames(turns: list[tuple[float, float, str]], n: int) -> tuple[np.ndarray, list[str]]:
    names = sorted({t[2] for t in turns})
    grid = np.zeros((len(names), n), bool)
    for start, end, who in turns:
        grid[names.index(who), int(round(start / FRAME_S)) : int(round(end / FRAME_S))] = True
    return grid, names


def diarization_error_rate(reference: list[tuple[float, float, str]],
                           hypothesis: list[tuple[float, float, str]],
                           collar: float = 0.0) -> float:
    """Frame-level DER (missed + false alarm + confusion over reference speech), speakers
    mapped one to one for the least error; overlapped speech counts; ``collar`` seconds
    around each reference boundary are not scored."""
    end = max(t[1] for t in reference + hypothesis)
    n = int(np.ceil(end / FRAME_S)) + 1
    ref, _ = _frames(reference, n)
    hyp, _ = _frames(hypothesis, n)
    scored = np.ones(n, bool)
    for start, stop, _who in reference:
        for edge in (start, stop):
            scored[max(0, int((edge - collar) / FRAME_S)) : int((edge + collar) / FRAME_S)] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    overlap = ref.astype(int) @ hyp.T.astype(int)  # (ref speakers, hyp speakers)
    rows, cols = linear_sum_assignment(-overlap)
    matched = overlap[rows, cols].sum()
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    errors = np.maximum(n_ref, n_hyp).sum() - matched
    return float(errors / max(1, n_ref.sum()))


def result_turns(result: dict) -> list[tuple[float, float, str]]:
    """Speaker turns of a diarized result: its segments (split at speaker changes)."""
    return [(s["start"], s["end"], s["speaker"]) for s in result["segments"]
            if s["end"] > s["start"]]


def main(argv: list[str] | None = None) -> int:
    """Print the DER of tiny.en + diarization on the recording (``python -m
    bench.conversation``)."""
    from workers.asr.transcribe import run_transcription

    folder = sample_dir()
    if folder is None:
        raise SystemExit(f"needs the test recording: pip install --no-deps {PACKAGE}==4.0.7")
    reference = reference_turns(folder / "sample.rttm")
    for vad in (True, False):
        result = run_transcription(str(folder / "sample.wav"), {
            "model": "tiny.en", "diarize": True, "word_timestamps": True, "vad": vad}, "cpu")
        turns = result_turns(result)
        print(f"vad={str(vad).lower():<5} speakers={len(result['speakers'])} "
              f"DER={diarization_error_rate(reference, turns):.1%} "
              f"DER(collar 0.25 s)={diarization_error_rate(reference, turns, 0.25):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
