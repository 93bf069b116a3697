"""Parsing is lenient: unknown fields are kept in ``.raw``, missing ones are None."""

from __future__ import annotations

from hark_client import Collection, Task, TaskCounts, Transcript
from hark_client.errors import WaitTimeoutError

RESULT = {
    "text": " Hello world.", "language": "en", "duration": 1.5, "model": "base",
    "segments": [{"id": 0, "start": 0.0, "end": 1.5, "text": " Hello world.",
                  "words": [{"word": " Hello", "start": 0.0, "end": 0.6, "probability": 0.9},
                            {"word": " world.", "start": 0.6, "end": 1.5,
                             "probability": 0.8}]}],
}


def test_task_keeps_unknown_fields_and_defaults_missing_ones():
    task = Task.from_dict({"id": "t", "status": "running", "progress": 40, "shiny": True,
                           "created_at": "2026-03-04T05:06:07Z", "started_at": None})
    assert task.raw["shiny"] is True and task.result is None and task.worker is None
    assert task.created_at.tzinfo is not None and task.started_at is None
    assert not task.finished and not task.succeeded and task.transcript is None
    assert "40%" in str(WaitTimeoutError(task, 1))


def test_completed_analysis_has_a_transcript_view():
    task = Task.from_dict({"id": "t", "status": "completed", "result": RESULT})
    transcript = task.transcript
    assert isinstance(transcript, Transcript) and transcript.language == "en"
    assert transcript.segments[0].end == 1.5
    assert [w.word for w in transcript.words] == [" Hello", " world."]
    assert transcript.segments[0].words[1].probability == 0.8


def test_counts_and_aliases():
    counts = TaskCounts.from_dict({"completed": 2, "total": 2})
    assert (counts.created, counts.completed, counts.total) == (0, 2, 2)
    assert Collection.from_dict({"collection_id": "c", "name": "C"}).id == "c"
    assert Collection.from_dict({"id": "d"}).id == "d"
