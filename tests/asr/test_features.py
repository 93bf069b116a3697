"""VAD, prompt/hotwords and diarization on real audio with the real models (tiny.en,
Silero VAD, Resemblyzer's voice encoder)."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest

from app.transcripts import to_srt, to_vtt
from bench.conversation import (
    diarization_error_rate,
    reference_turns,
    result_turns,
    sample_dir,
)
from bench.speech import WEATHER, synthesize, words_of, write_audio
from core.prompting import fold_prompt
from workers.asr import diarize as diarize_module
from workers.asr import vad as vad_module
from workers.asr.audio import decode_audio
from workers.asr.diarize import SpeakerCount, _split, diarize
from workers.asr.registry import ENGINES
from workers.asr.transcribe import run_transcription, transcribe, transcribe_many
from workers.asr.vad import SpeechMap, VadOptions, speech_spans

NOISE_S = 8.0
NAMES = "Tomorrow I will meet Siobhan Nguyen at the Qdrant office."
CITY = "Please send the invoice to Kubernetes support in Reykjavik."


def noise(seconds: float, level: float = 0.05) -> np.ndarray:
    """Seeded room-like noise: white noise through a gentle low-pass."""
    raw = np.random.default_rng(7).normal(0, level, int(seconds * 16000))
    return np.convolve(raw, np.ones(4) / 4, mode="same").astype(np.float32)


@pytest.fixture(scope="module")
def noisy_speech(tmp_path_factory, clips):
    speech = synthesize(WEATHER)
    audio = np.concatenate([noise(NOISE_S), speech + noise(len(speech) / 16000, 0.01)])
    folder = tmp_path_factory.mktemp("vad")
    return {"speech": write_audio(folder / "noise_then_speech.wav", audio),
            "none": write_audio(folder / "noise_only.wav", noise(6.0)),
            "city": write_audio(folder / "city.mp3", synthesize(CITY))}


@pytest.fixture(scope="module")
def conversation():
    folder = sample_dir()
    assert folder is not None, "pip install --no-deps pyannote.audio (the test recording)"
    return folder / "sample.wav", reference_turns(folder / "sample.rttm")


@pytest.fixture(scope="module", params=ENGINES)
def diarized(request, models_dir, conversation):
    """The conversation transcribed and diarized on each engine (words drive the turns)."""
    if request.param == "ct2":
        pytest.importorskip("ctranslate2", reason="the ct2 extra is not installed")
    wav, _ = conversation
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WHISPER_ENGINE", request.param)
        return run_transcription(str(wav), {"model": "tiny.en", "diarize": True,
                                            "word_timestamps": True}, "cpu")


def test_vad_skips_noise_and_keeps_the_timeline(engine, noisy_speech):
    spans = speech_spans(decode_audio(
        str(noisy_speech["speech"])), VadOptions())
    assert spans and NOISE_S - 0.6 < spans[0][0] / 16000 < NOISE_S + 0.3, spans
    result = run_transcription(str(noisy_speech["speech"]),
                               {"model": "tiny.en", "word_timestamps": True}, "cpu")
    first = result["segments"][0]
    assert NOISE_S - 0.6 <= first["start"] < NOISE_S + 1.0, result["segments"]
    assert all(w["start"] >= NOISE_S - 0.6 for s in result["segments"] for w in s["words"])
    assert {"sunny", "warm", "west"} <= words_of(result["text"]), result["text"]
    assert result["duration"] > NOISE_S + 3


def test_no_speech_gives_an_empty_transcript(models_dir, noisy_speech):
    result = run_transcription(str(noisy_speech["none"]), {"model": "tiny.en"}, "cpu")
    assert result["text"] == "" and result["segments"] == []
    assert result["duration"] == 6.0


def test_hotwords_fix_misheard_names_and_batches_keep_prompts_apart(tiny):
    audio = synthesize(NAMES)
    plain = transcribe(tiny, audio)
    assert not {"siobhan", "qdrant"} & words_of(plain["text"]), plain["text"]
    prompt = fold_prompt(None, ["Siobhan Nguyen", "Qdrant"])
    hot = transcribe(tiny, audio, prompt=prompt)
    assert {"siobhan", "nguyen", "qdrant"} <= words_of(hot["text"]), hot["text"]
    # one batch of two windows would have decoded both with the first one's prompt
    assert transcribe_many(tiny, [audio, audio], prompts=[prompt, None]) == [hot, plain]


def test_prompt_option_reaches_the_decoder(engine, noisy_speech):
    city = run_transcription(str(noisy_speech["city"]), {
        "model": "tiny.en", "prompt": "Ticket notes: Kubernetes support, Reykjavik."}, "cpu")
    assert {"kubernetes", "reykjavik"} <= words_of(city["text"]), city["text"]


def test_prompt_over_budget_is_refused(models_dir, noisy_speech):
    with pytest.raises(ValueError, match="prompt budget is 223"):
        run_transcription(str(noisy_speech["city"]),
                          {"model": "tiny.en", "prompt": "word " * 300}, "cpu")


def speaker_of(result: dict, word: str) -> str:
    return next(w["speaker"] for s in result["segments"] for w in s["words"]
                if w["word"].strip(".,?!").lower() == word)


def test_diarization_follows_the_turns_of_a_real_conversation(diarized, conversation):
    _, reference = conversation
    assert [s["speaker"] for s in diarized["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    diane, sheila = speaker_of(diarized, "diane"), speaker_of(diarized, "sheila")
    assert diane != sheila
    assert speaker_of(diarized, "yankee") == sheila  # Sheila, 24-28 s
    assert speaker_of(diarized, "also") == diane  # Diane: "Chicago also", 18-20 s
    for seg in diarized["segments"]:
        assert {w["speaker"] for w in seg["words"]} == {seg["speaker"]}
    spoken = sum(s["speaking_time"] for s in diarized["speakers"])
    assert 15 < spoken <= diarized["duration"]
    der = diarization_error_rate(reference, result_turns(diarized), collar=0.25)
    assert der < 0.2, der


def test_speaker_count_options(diarized, conversation):
    wav, _ = conversation
    audio = decode_audio(str(wav))
    one = diarize(copy.deepcopy(diarized), audio, "cpu", SpeakerCount(high=1))
    assert [s["speaker"] for s in one["speakers"]] == ["SPEAKER_00"]
    two = diarize(copy.deepcopy(diarized), audio, "cpu", SpeakerCount(exact=2))
    assert len(two["speakers"]) == 2
    three = diarize(copy.deepcopy(diarized), audio, "cpu", SpeakerCount(low=3))
    assert len(three["speakers"]) == 3


def test_one_speaker_gives_one_speaker_and_labelled_cues(engine, clips):
    result = run_transcription(str(clips["weather"]), {"model": "tiny.en", "diarize": True},
                               "cpu")
    assert [s["speaker"] for s in result["speakers"]] == ["SPEAKER_00"]
    assert all("words" not in s for s in result["segments"])  # timed only to diarize
    srt, vtt = to_srt(result), to_vtt(result)
    assert srt.split("\n")[2].startswith("[SPEAKER_00]: ")
    assert vtt.split("\n")[3].startswith("[SPEAKER_00]: ")


def test_missing_packages_fail_with_their_names(models_dir, clips, monkeypatch):
    monkeypatch.setattr(vad_module, "_MODEL", None)
    monkeypatch.setitem(sys.modules, "silero_vad", None)  # as if not installed
    with pytest.raises(vad_module.VadUnavailable, match="silero-vad"):
        run_transcription(str(clips["weather"]), {"model": "tiny.en"}, "cpu")
    monkeypatch.setattr(diarize_module, "_ENCODERS", {})
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    with pytest.raises(diarize_module.DiarizationUnavailable, match="resemblyzer"):
        run_transcription(str(clips["weather"]),
                          {"model": "tiny.en", "vad": False, "diarize": True}, "cpu")


@pytest.mark.parametrize("options,message", [
    ({"vad": "yes"}, "vad must be"),
    ({"vad_threshold": 1.5}, "vad_threshold"),
    ({"vad_min_silence_ms": -1}, "vad_min_silence_ms"),
    ({"hotwords": "Qdrant"}, "hotwords"),
    ({"diarize": True, "min_speakers": 3, "max_speakers": 2}, "min_speakers"),
    ({"diarize": True, "num_speakers": 0}, "num_speakers"),
])
def test_bad_feature_options(models_dir, clips, options, message):
    with pytest.raises(ValueError, match=message):
        run_transcription(str(clips["weather"]), {"model": "tiny.en", **options}, "cpu")


def test_speech_map_puts_times_back_on_the_recording():
    spans = SpeechMap(((16000, 32000), (64000, 80000)), 100000)  # 1-2 s and 4-5 s
    assert [spans.to_original(t) for t in (0.0, 0.5, 1.0, 1.5)] == [1.0, 1.5, 4.0, 4.5]
    assert spans.to_original(1.0, is_end=True) == 2.0  # an end at the join stays before it
    assert spans.to_original(2.5, is_end=True) == 5.0  # clipped to its span
    result = spans.restore({"duration": 2.0, "segments": [
        {"start": 0.2, "end": 1.6, "words": [{"start": 0.9, "end": 1.2}]}]})
    assert result["duration"] == 6.25
    assert result["segments"][0]["start"] == 1.2 and result["segments"][0]["end"] == 4.6
    assert result["segments"][0]["words"][0] == {"start": 1.9, "end": 4.2}


def test_a_short_first_turn_joins_the_next():
    words = [{"word": "Oh", "start": 0.0, "end": 0.1, "speaker": 1},
             {"word": "hello", "start": 0.1, "end": 0.9, "speaker": 0},
             {"word": "there", "start": 0.9, "end": 1.5, "speaker": 0}]
    seg = {"id": 0, "start": 0.0, "end": 1.5, "text": "Oh hello there", "words": words}
    assert [(s["text"], s["speaker"]) for s in _split(seg, "en")] == [("Oh hello there", 0)]
    words[2]["speaker"] = 2
    words[2]["end"] = 2.5
    parts = _split(seg, "en")
    assert [(s["text"], s["speaker"], s["start"], s["end"]) for s in parts] == [
        ("Oh hello", 0, 0.0, 0.9), ("there", 2, 0.9, 2.5)]
