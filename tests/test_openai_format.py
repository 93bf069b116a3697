"""OpenAI's response formats rendered from a platform result (no server needed)."""

from app.openai_format import render

RESULT = {"text": "Hello there. General Kenobi.", "language": "en", "duration": 4.2,
          "segments": [
              {"id": 0, "start": 0.0, "end": 1.5, "text": "Hello there.", "seek": 0,
               "tokens": [15496, 612, 13], "temperature": 0.0, "avg_logprob": -0.2,
               "compression_ratio": 0.9, "no_speech_prob": 0.01, "speaker": "SPEAKER_00",
               "words": [{"word": "Hello", "start": 0.0, "end": 0.6, "probability": 0.9},
                         {"word": "there.", "start": 0.6, "end": 1.5, "probability": 0.8}]},
              {"id": 1, "start": 1.5, "end": 4.2, "text": "General Kenobi.",
               "speaker": "SPEAKER_01"}]}


def test_granularities_pick_segments_and_words():
    words_only, kind = render(RESULT, "verbose_json", "transcribe", {"word"})
    assert kind == "application/json" and "segments" not in words_only
    assert words_only["words"] == [{"word": "Hello", "start": 0.0, "end": 0.6},
                                   {"word": "there.", "start": 0.6, "end": 1.5}]
    segments, _ = render(RESULT, "verbose_json", "translate", {"segment"})
    assert "words" not in segments and segments["task"] == "translate"
    assert segments["usage"] == {"type": "duration", "seconds": 5}
    # a segment without scores (a result from an older worker) still has every field
    assert segments["segments"][1] == {
        "id": 1, "seek": 0, "start": 1.5, "end": 4.2, "text": "General Kenobi.",
        "tokens": [], "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0,
        "no_speech_prob": 0.0}


def test_json_text_and_diarized():
    assert render(RESULT, "json", "transcribe", {"segment"})[0] == {
        "text": RESULT["text"], "usage": {"type": "duration", "seconds": 5}}
    text, kind = render(RESULT, "text", "transcribe", {"segment"})
    assert text == RESULT["text"] + "\n" and kind.startswith("text/plain")
    diarized, _ = render(RESULT, "diarized_json", "transcribe", {"segment"})
    assert [(s["id"], s["speaker"], s["type"]) for s in diarized["segments"]] == [
        ("seg_0", "SPEAKER_00", "transcript.text.segment"),
        ("seg_1", "SPEAKER_01", "transcript.text.segment")]
