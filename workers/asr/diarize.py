"""Speaker diarization of a transcription result: who spoke each segment and word.

Speaker embeddings come from Resemblyzer's pretrained voice encoder (a 3-layer LSTM over
40-band mel frames, trained on ~1.8 k speakers; the weights ship inside the
``resemblyzer`` package and load offline). Only the weights are taken from the package:
its mel front end needs librosa and webrtcvad, so the same features (power mel, 25 ms
windows, 10 ms hop, Slaney filters) are computed here with torch, on the worker's device.

Embeddings of 1.6 s windows every 0.6 s across the transcribed speech are clustered
(spectral clustering, :func:`cluster`): into ``num_speakers`` clusters when given, else
as many as the eigengap says, within ``min_speakers`` and ``max_speakers``. Each word
takes the speaker whose windows cover most of it, and a segment whose words change
speaker is split there (without words, a segment takes its majority speaker).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40
WINDOW_FRAMES = 160  # 1.6 s, the encoder's training length
STEP_FRAMES = 60  # 0.6 s between windows (0.4 s: 1.5x the cost, DER no better)
KEEP_NEIGHBOURS = 0.3  # share of each window's most similar windows kept as affinities
MAX_AUTO_SPEAKERS = 8  # most speakers found when no bound is given
MIN_NEIGHBOURS = 10  # fewest affinities kept per window (short recordings)
MIN_TURN_S = 0.3  # shorter speaker runs inside a segment join their neighbour
NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue", "bo"}
TARGET_DBFS = -30.0
PACKAGE = "resemblyzer"

_ENCODERS: dict[str, VoiceEncoder] = {}
_LOCK = threading.Lock()


class DiarizationUnavailable(RuntimeError):
    """The speaker-embedding model could not be loaded (its package is missing)."""


@dataclasses.dataclass(frozen=True)
class SpeakerCount:
    """What the request says about the number of speakers."""

    exact: int | None = None
    low: int = 1
    high: int | None = None

    @classmethod
    def from_options(cls, options: dict) -> SpeakerCount:
        exact, low, high = (options.get(k) for k in ("num_speakers", "min_speakers",
                                                      "max_speakers"))
        for name, value in (("num_speakers", exact), ("min_speakers", low),
                            ("max_speakers", high)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if low is not None and high is not None and low > high:
            raise ValueError("min_speakers is more than max_speakers")
        return cls(exact, low or 1, high)


class VoiceEncoder(torch.nn.Module):
    """Resemblyzer's speaker encoder: mel frames -> L2-normed 256-d embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)


def _weights_path() -> Path:
    try:
        spec = importlib.util.find_spec(PACKAGE)  # finds the package without importing it
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DiarizationUnavailable(f"speaker diarization needs the {PACKAGE} package "
                                     f"(pip install --no-deps {PACKAGE})")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise DiarizationUnavailable(f"speaker diarization: {PACKAGE} is installed but its "
                                     "pretrained.pt voice encoder is missing")
    return path


def get_encoder(device: str) -> VoiceEncoder:
    """The process-wide voice encoder on ``device``."""
    with _LOCK:
        if device not in _ENCODERS:
            state = torch.load(_weights_path(), map_location="cpu", weights_only=True)
            encoder = VoiceEncoder()
            encoder.load_state_dict(state["model_state"], strict=False)
            _ENCODERS[device] = encoder.to(device).eval()
        return _ENCODERS[device]


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    return np.where(f < 1000, f * 3 / 200, 15 + np.log(np.maximum(f, 1e-9) / 1000) * 27
                    / np.log(6.4))


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return np.where(m < 15, m * 200 / 3, 1000 * np.exp((m - 15) * np.log(6.4) / 27))


def mel_filters() -> np.ndarray:
    """Slaney-style mel filterbank (librosa's default), shape (40, 201)."""
    freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(0, _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / np.diff(edges)[:-1, None]
    upper = ramps[2:] / np.diff(edges)[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def mel_frames(audio: np.ndarray, device: str) -> torch.Tensor:
    """(frames, 40) power mel spectrogram of 16 kHz ``audio`` (10 ms per frame)."""
    wav = torch.from_numpy(np.ascontiguousarray(audio, np.float32)).to(device)
    spec = torch.stft(wav, N_FFT, HOP, window=torch.hann_window(N_FFT, device=device),
                      center=True, pad_mode="constant", return_complex=True)
    filters = torch.from_numpy(mel_filters()).to(device)
    return (filters @ spec.abs().square()).T


def _speech_mask(segments: list[dict], n_frames: int) -> np.ndarray:
    mask = np.zeros(n_frames, bool)
    for seg in segments:
        mask[int(seg["start"] * 100) : int(np.ceil(seg["end"] * 100))] = True
    return mask


def window_embeddings(audio: np.ndarray, segments: list[dict], device: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(window centres in seconds, embeddings) over the speech the segments cover."""
    mask = _speech_mask(segments, len(audio) // HOP + 1)
    speech = np.concatenate([audio[int(s["start"] * SAMPLE_RATE) : int(s["end"] * SAMPLE_RATE)]
                             for s in segments])
    power = float(np.mean(np.square(speech))) if len(speech) else 0.0
    gain = 10 ** ((TARGET_DBFS - 10 * np.log10(power)) / 20) if power > 0 else 1.0
    mels = mel_frames(audio * max(gain, 1.0), device)
    half = WINDOW_FRAMES // 2
    centres = [c for c in range(0, mels.shape[0], STEP_FRAMES) if mask[min(c, len(mask) - 1)]]
    if not centres:
        return np.zeros(0), np.zeros((0, 256), np.float32)
    padded = torch.nn.functional.pad(mels, (0, 0, half, half))
    batch = torch.stack([padded[c : c + WINDOW_FRAMES] for c in centres])
    encoder = get_encoder(device)
    # one batched LSTM over all windows: large matrix steps that use the worker's torch
    # threads (unlike the VAD's per-frame steps, see vad.one_thread): 0.39 s vs 0.68 s on
    # one thread for 2 minutes of speech on 2 cores
    with torch.no_grad():
        embeddings = torch.cat([encoder(chunk) for chunk in batch.split(256)])
    return np.array(centres) * HOP / SAMPLE_RATE, embeddings.cpu().numpy()


def _kmeans(x: np.ndarray, k: int, rounds: int = 30) -> np.ndarray:
    """Deterministic k-means (farthest-point start) of the rows of ``x``."""
    centres = [x[0]]
    for _ in range(1, k):
        dist = np.min([np.square(x - c).sum(axis=1) for c in centres], axis=0)
        centres.append(x[int(np.argmax(dist))])
    centre = np.array(centres)
    labels = np.zeros(len(x), int)
    for _ in range(rounds):
        labels = np.argmin(np.square(x[:, None, :] - centre[None]).sum(axis=2), axis=1)
        moved = np.array([x[labels == i].mean(axis=0) if (labels == i).any() else centre[i]
                          for i in range(k)])
        if np.allclose(moved, centre):
            break
        centre = moved
    return labels


def cluster(embeddings: np.ndarray, count: SpeakerCount) -> np.ndarray:
    """Cluster index (0-based, in order of first appearance) of each embedding.

    Spectral clustering of d-vectors (Wang et al., 2018): cosine affinities, each row
    pruned to its :data:`KEEP_NEIGHBOURS` share of nearest windows and symmetrised; the
    number of speakers is where the Laplacian's eigenvalues jump the most (within the
    bounds asked for), unless it is given.
    """
    n = len(embeddings)
    high = min(count.exact or count.high or MAX_AUTO_SPEAKERS, n)
    low = min(count.exact or count.low, high)
    if n < 2 or high <= 1:
        return np.zeros(n, int)
    affinity = embeddings.astype(np.float64) @ embeddings.T.astype(np.float64)
    keep = min(n, max(MIN_NEIGHBOURS, int(round(KEEP_NEIGHBOURS * n))))
    nearest = np.argsort(-affinity, axis=1)[:, :keep]
    pruned = np.zeros_like(affinity)
    np.put_along_axis(pruned, nearest, np.take_along_axis(affinity, nearest, 1), 1)
    pruned = np.maximum(pruned, pruned.T)
    values, vectors = np.linalg.eigh(np.diag(pruned.sum(axis=1)) - pruned)
    gaps = np.diff(values[: high + 1])
    k = low + int(np.argmax(gaps[low - 1 : high])) if high > low else low
    if k == 1:
        return np.zeros(n, int)
    x = vectors[:, :k] / np.maximum(np.linalg.norm(vectors[:, :k], axis=1, keepdims=True), 1e-9)
    labels = _kmeans(x, k)
    order = {label: i for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()])


def _speaker_of(start: float, end: float, centres: np.ndarray, labels: np.ndarray) -> int:
    step = STEP_FRAMES * HOP / SAMPLE_RATE
    overlap = np.clip(np.minimum(end, centres + step / 2) - np.maximum(start, centres - step / 2),
                      0, None)
    if overlap.sum() <= 0:
        return int(labels[np.argmin(np.abs(centres - (start + end) / 2))])
    return int(np.argmax(np.bincount(labels, weights=overlap)))


def _split(seg: dict, language: str | None) -> list[dict]:
    """``seg`` cut where its words change speaker (turns under MIN_TURN_S are absorbed)."""
    runs: list[list[dict]] = []
    for word in seg["words"]:
        if runs and runs[-1][-1]["speaker"] == word["speaker"]:
            runs[-1].append(word)
        else:
            runs.append([word])
    merged: list[list[dict]] = []
    for run in runs:
        if merged and run[-1]["end"] - run[0]["start"] < MIN_TURN_S:
            merged[-1] += run
        else:
            merged.append(run)
    if len(merged) > 1 and merged[0][-1]["end"] - merged[0][0]["start"] < MIN_TURN_S:
        first = merged.pop(0)
        merged[0][:0] = first
    joiner = "" if language in NO_SPACE_LANGUAGES else " "
    out = []
    for run in merged:
        spoken: dict[int, float] = {}
        for word in run:
            spoken[word["speaker"]] = spoken.get(word["speaker"], 0.0) + word["end"] - word["start"]
        speaker = max(spoken, key=spoken.get)
        for word in run:
            word["speaker"] = speaker
        if len(merged) == 1:
            return [{**seg, "speaker": speaker}]
        out.append({**seg, "start": run[0]["start"] if out else seg["start"],
                    "end": run[-1]["end"], "text": joiner.join(w["word"] for w in run),
                    "words": run, "speaker": speaker})
    out[-1]["end"] = max(out[-1]["end"], seg["end"])
    return out


def diarize(result: dict, audio: np.ndarray, device: str = "cpu",
            count: SpeakerCount | None = None) -> dict:
    """Add ``speaker`` to each segment and word of ``result`` (a transcription of
    ``audio``), splitting segments at speaker turns, and a ``speakers`` list with each
    one's total speaking time. Speakers are named in order of appearance."""
    count = count or SpeakerCount()
    centres, embeddings = window_embeddings(audio, result["segments"], device)
    labels = cluster(embeddings, count)

    def speaker(start: float, end: float) -> int:
        return _speaker_of(start, end, centres, labels) if len(labels) else 0

    segments = []
    for seg in result["segments"]:
        seg["speaker"] = speaker(seg["start"], seg["end"])
        for word in seg.get("words", ()):
            word["speaker"] = speaker(word["start"], max(word["end"], word["start"] + 0.02))
        segments += _split(seg, result.get("language")) if seg.get("words") else [seg]
    names: dict[int, str] = {}
    for i, seg in enumerate(segments):
        seg["id"] = i
        seg["speaker"] = names.setdefault(seg["speaker"], f"SPEAKER_{len(names):02d}")
        for word in seg.get("words", ()):
            word["speaker"] = names.setdefault(word["speaker"], f"SPEAKER_{len(names):02d}")
    totals: dict[str, float] = {}
    for seg in segments:
        totals[seg["speaker"]] = totals.get(seg["speaker"], 0.0) + seg["end"] - seg["start"]
    result["segments"] = segments
    result["speakers"] = [{"speaker": s, "speaking_time": round(t, 3)}
                          for s, t in sorted(totals.items())]
    return result
