"""VAD, prompt/hotwords and diarization options through POST /analyze and a real worker."""

import pytest

from bench.speech import espeak_available, make_speech_clip
from tests.test_analyze import words

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")
NAMES = "Tomorrow I will meet Siobhan Nguyen at the Qdrant office."


def test_hotwords_diarize_and_speaker_cues(client, auth, worker, tmp_path):
    clip = make_speech_clip(tmp_path / "names.wav", NAMES)
    with open(clip, "rb") as fh:
        response = client.post("/analyze?timeout=180", headers=auth, data={
            "file": (fh, "names.wav"), "hotwords": ["Siobhan Nguyen", "Qdrant"],
            "diarize": "true", "max_speakers": "3", "vad_threshold": "0.4"})
    task = response.get_json()
    assert response.status_code == 200 and task["status"] == "completed", task
    result = task["result"]
    assert {"siobhan", "qdrant"} <= words(result["text"]), result["text"]
    assert result["speakers"][0]["speaker"] == "SPEAKER_00"
    assert all(s["speaker"] == "SPEAKER_00" for s in result["segments"])
    options = task["data"]["options"]
    assert options["hotwords"] == ["Siobhan Nguyen", "Qdrant"] and options["vad"] is True
    srt = client.get(f"/tasks/{task['task_id']}/transcript?format=srt", headers=auth)
    assert "\n[SPEAKER_00]: " in srt.get_data(True)


@pytest.mark.parametrize("options,field", [
    ({"vad": "yes"}, "vad"),
    ({"vad_threshold": 1.5}, "vad_threshold"),
    ({"vad_min_silence_ms": -5}, "vad_min_silence_ms"),
    ({"vad_speech_pad_ms": 1.5}, "vad_speech_pad_ms"),
    ({"prompt": "word " * 300}, "prompt"),
    ({"hotwords": ["Qdrant " * 240]}, "hotwords"),
    ({"hotwords": "Qdrant"}, "hotwords"),
    ({"diarize": "on"}, "diarize"),
    ({"num_speakers": 0}, "num_speakers"),
    ({"min_speakers": 3, "max_speakers": 2}, "min_speakers"),
    ({"num_speakers": 2, "max_speakers": 3}, "num_speakers"),
])
def test_bad_speech_options_are_400s_naming_the_field(client, auth, options, field):
    response = client.post("/analyze", headers=auth, json={"media": {"base64": "AAAA"},
                                                           **options})
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "validation_error" and field in body["message"], body


def test_speech_options_are_in_the_api_document(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    fields = schemas["AnalyzeRequest"]["properties"]
    for name in ("vad", "vad_threshold", "vad_min_speech_ms", "vad_min_silence_ms",
                 "vad_speech_pad_ms", "prompt", "hotwords", "diarize", "num_speakers",
                 "min_speakers", "max_speakers"):
        assert name in fields, name
    assert fields["vad"]["default"] is True and fields["diarize"]["default"] is False


def test_loading_vad_keeps_the_process_torch_threads():
    """Importing silero_vad sets torch to one thread for the whole process; loading the VAD
    must leave decoding on the worker's configured threads."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(2); from workers.asr.vad import load_vad; "
            "load_vad(); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "2"
