"""Every ``hark`` command and flag against the live platform.

The commands run in-process (``hark_client.cli.main``: interpreter start-up would cost
more than the commands); Ctrl-C is sent to a real ``hark`` process.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import numpy as np
import pytest

from core import collections_store, lifecycle
from core.models import utcnow
from core.models_webhooks import WebhookAttempt, WebhookDelivery
from hark_client.cli import main
from tests.support import wait_for


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def hark_cli(*args: str, url: str, key: str | None = None) -> Ran:
    """``hark ARGS`` with stdout and stderr captured (no $HARK_* from the environment)."""
    argv = ["--url", url, *(["--api-key", key] if key else []), *args]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return Ran(code, out.getvalue(), err.getvalue())

TRANSCRIPT = {"text": "Hello there. General Kenobi.", "language": "en", "duration": 3.0,
              "segments": [{"id": 0, "start": 0.0, "end": 1.2, "text": "Hello there."},
                           {"id": 1, "start": 1.5, "end": 3.0, "text": "General Kenobi."}]}


@pytest.fixture()
def cli(api_url, api_key):
    def run(*args: str, key: str | None = None, check: bool = True):
        done = hark_cli(*args, url=api_url, key=key or api_key)
        if check:
            assert done.returncode == 0, (args, done.stderr)
            assert "Traceback" not in done.stderr
        return done
    return run


def finished_analysis(db, owner: str = "alice") -> str:
    with db.transaction() as session:
        task_id = lifecycle.create_task(session, owner=owner, endpoint="/analyze", data={
            "media": {"url": "http://127.0.0.1:9/a.wav"}, "options": {}}).id
    with db.transaction() as session:
        lifecycle.mark_assigned(session, task_id, "cpu")
    with db.transaction() as session:
        lifecycle.claim(session, task_id, worker="w@test", device="cpu")
    with db.transaction() as session:
        lifecycle.complete(session, task_id, TRANSCRIPT, attempt=1)
    return str(task_id)


def test_me_models_and_workers(cli, admin_key):
    me = json.loads(cli("me", "--json").stdout)
    assert me["owner"] == "alice" and me["admin"] is False
    assert "owner:" in cli("me").stdout and cli("me", "-q").stdout.strip() == "alice"
    models = json.loads(cli("models", "--json").stdout)
    listed = cli("models").stdout.splitlines()
    assert f"{models['default']} (default)" in listed
    assert cli("models", "-q").stdout.split() == models["models"]
    denied = cli("workers", check=False)
    assert denied.returncode == 1 and "403" in denied.stderr
    # Tables are emptied before each test: wait until every pool process's presence row
    # is back (two listings in a row agree), so the table and the ids see the same rows.
    def settled() -> list[str] | None:
        first = cli("workers", "-q", key=admin_key).stdout.split()
        return first if first and first == cli("workers", "-q", key=admin_key).stdout.split() \
            and len(first) >= 2 else None

    wait_for(settled, message="every worker's presence")
    table = cli("workers", key=admin_key).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "DEVICE", "QUEUES"] and len(table) >= 2
    ids = cli("workers", "-q", key=admin_key).stdout.split()
    assert ids and all(i in "\n".join(table) for i in ids)


def test_task_listing_pages_with_cursor_and_all(cli, hark):
    ids = [hark.diagnostics_sleep(0).id for _ in range(3)][::-1]  # newest first
    first = cli("tasks", "list", "--limit", "2", "--per-page", "1", "-q")
    assert first.stdout.split() == ids[:2] and first.stderr == ""  # -q: no hint
    hinted = cli("tasks", "list", "--limit", "2", "--per-page", "1")
    cursor = hinted.stderr.split("--cursor ")[1].split()[0]
    assert cli("tasks", "list", "--cursor", cursor, "-q").stdout.split() == ids[2:]
    assert cli("tasks", "list", "--all", "--per-page", "1", "-q").stdout.split() == ids
    assert cli("tasks", "list", "--status", "failed", "-q").stdout == ""


def test_task_events_transcript_get_and_delete(cli, db):
    task_id = finished_analysis(db)
    events = cli("tasks", "events", task_id).stdout.splitlines()
    assert events[0].split()[:3] == ["AT", "EVENT", "DETAILS"] and len(events) >= 3
    trail = json.loads(cli("tasks", "events", task_id, "--json").stdout)
    assert any(e["type"] == "completed" or "complet" in e["type"] for e in trail)
    srt = cli("tasks", "transcript", task_id, "--format", "srt").stdout
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,200\nHello there.")
    assert cli("tasks", "transcript", task_id).stdout.strip() == TRANSCRIPT["text"]
    assert cli("tasks", "get", task_id, "-q").stdout.strip() == task_id
    assert cli("tasks", "delete", task_id, "-q").stdout.strip() == task_id
    gone = cli("tasks", "transcript", task_id, check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr


def test_submission_flags_api_key_file_and_upload_progress(cli, api_url, api_key, admin_key,
                                                           tmp_path):
    # Tables are emptied before each test: the worker's presence row is back at its next
    # heartbeat.
    [worker] = wait_for(lambda: json.loads(cli("workers", "--json", key=admin_key).stdout)[:1],
                        message="the worker's presence")
    big = tmp_path / "big.wav"
    big.write_bytes(os.urandom(3 * 1024 * 1024 // 2))
    key_file = tmp_path / "key"
    key_file.write_text(api_key + "\n")
    done = hark_cli("--api-key-file", str(key_file), "analyze", str(big), "--queue",
                    worker["queues"][0], "--webhook", "http://127.0.0.1:9/hook",
                    "--webhook-event", "task.failed", "--model", "tiny.en", "--language",
                    "en", "--words", "--priority", "3", "--filename", "renamed.wav",
                    url=api_url)
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert "uploading big.wav: " in done.stderr and "(100%)" in done.stderr
    assert f"hark tasks wait {task_id}" in done.stderr
    task = json.loads(cli("--json", "tasks", "get", task_id).stdout)
    assert task["priority"] == 3 and task["queue"] == worker["queues"][0]
    assert task["data"]["webhook"] == "http://127.0.0.1:9/hook"
    assert task["data"]["webhook_events"] == ["task.failed"]
    assert task["data"]["options"]["word_timestamps"] is True
    assert task["data"]["options"]["model"] == "tiny.en"
    cli("tasks", "delete", task_id)
    missing = hark_cli("--api-key-file", str(tmp_path / "nope"), "me", url=api_url)
    assert missing.returncode == 2 and "--api-key-file" in missing.stderr


def test_index_flags_reach_the_task(cli):
    cli("collections", "create", "talks", "--name", "Talks")
    submitted = cli("index", "http://127.0.0.1:9/a.wav", "--collection", "talks",
                    "--media-id", "ep1", "--model", "tiny.en", "--language", "en", "--words",
                    "--translate", "--reindex", "-q")
    task_id = submitted.stdout.strip()
    assert submitted.stderr == ""
    task = json.loads(cli("--json", "tasks", "get", task_id).stdout)
    options = task["data"]["options"]
    assert (options["model"], options["language"], options["task"]) == \
        ("tiny.en", "en", "translate")
    assert options["word_timestamps"] is True
    cli("tasks", "delete", task_id)


def test_collections_update_get_media_and_delete_media(cli, db):
    cli("collections", "create", "talks", "--name", "Talks", "--description", "old")
    with db.transaction() as session:
        collections_store.save_media(
            session, owner="alice", collection_id="talks", media_id="ep1", replace=False,
            passages=TRANSCRIPT["segments"], vectors=np.ones((2, 384), dtype=np.float32),
            duration=3.0, language="en", filename="ep1.wav")
    updated = json.loads(cli("collections", "update", "talks", "--name", "Renamed",
                             "--json").stdout)
    assert (updated["name"], updated["description"]) == ("Renamed", "old")
    cleared = cli("collections", "update", "talks", "--clear-description").stdout
    assert "description: -" in cleared and "Renamed" in cleared
    nothing = cli("collections", "update", "talks", check=False)
    assert nothing.returncode == 2
    media = cli("collections", "get-media", "talks", "ep1").stdout
    assert "0.00-1.20 Hello there." in media and "ep1.wav" in media
    assert cli("collections", "media", "talks", "-q").stdout.split() == ["ep1"]
    assert "deleted media ep1" in cli("collections", "delete-media", "talks", "ep1").stdout
    assert cli("collections", "media", "talks").stdout.strip() == "(none)"
    assert cli("collections", "list", "-q").stdout.split() == ["talks"]


def add_failed_delivery(db, webhook_id: str, attempts: int) -> str:
    now, delivery_id = utcnow(), uuid.uuid4()
    with db.transaction() as session:
        session.add(WebhookDelivery(
            id=delivery_id, message_id=f"msg_{delivery_id.hex[:20]}",
            webhook_id=uuid.UUID(webhook_id), owner="alice", event="task.completed",
            task_id=uuid.uuid4(), task_attempt=1, status="failed", attempts=attempts,
            retry_from=1, due_at=None, created_at=now, updated_at=now))
        session.flush()
        for n in range(1, attempts + 1):
            session.add(WebhookAttempt(delivery_id=delivery_id,
                                       webhook_id=uuid.UUID(webhook_id), owner="alice",
                                       attempt=n, status_code=500, duration_ms=5,
                                       outcome="failed" if n == attempts else "retry",
                                       created_at=now))
    return str(delivery_id)


def test_webhook_commands(cli, db):
    created = cli("webhooks", "create", "http://127.0.0.1:9/a", "--event", "task.failed",
                  "--description", "ci")
    assert "secret:" in created.stdout and "keep the secret" in created.stderr
    hook_id = cli("webhooks", "list", "-q").stdout.strip()
    shown = cli("webhooks", "get", hook_id).stdout
    assert "task.failed" in shown and "ci" in shown and "secret" not in shown
    changed = json.loads(cli("webhooks", "update", hook_id, "--new-url",
                             "http://127.0.0.1:9/b", "--all-events", "--disable",
                             "--json").stdout)
    assert (changed["url"], changed["events"], changed["enabled"]) == \
        ("http://127.0.0.1:9/b", None, False)
    cli("webhooks", "update", hook_id, "--enable", "--event", "task.completed")
    rotated = json.loads(cli("webhooks", "rotate-secret", hook_id, "--grace-seconds", "60",
                             "--json").stdout)
    assert rotated["secret"].startswith("whsec_") and rotated["previous_secret_expires_at"]
    delivery = add_failed_delivery(db, hook_id, attempts=3)
    page = cli("webhooks", "deliveries", hook_id, "--limit", "2")
    assert len(page.stdout.splitlines()) == 3 and "--cursor " in page.stderr
    everything = cli("webhooks", "deliveries", hook_id, "--all", "--per-page", "1", "--json")
    assert [d["attempt"] for d in json.loads(everything.stdout)] == [3, 2, 1]
    again = cli("webhooks", "redeliver", hook_id, delivery, "--json")
    assert json.loads(again.stdout)["status"] == "pending"
    twice = cli("webhooks", "redeliver", hook_id, delivery, check=False)
    assert twice.returncode == 1 and "409" in twice.stderr
    assert cli("webhooks", "deliveries", "callbacks").stdout.strip() == "(none)"
    assert "deleted webhook" in cli("webhooks", "delete", hook_id).stdout


def test_ctrl_c_while_waiting_says_how_to_resume(api_url, api_key, hark):
    task = hark.diagnostics_sleep(20, defer=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARK_")}
    env.update(HARK_URL=api_url, HARK_API_KEY=api_key)
    process = subprocess.Popen([sys.executable, "-m", "hark_client.cli", "tasks", "wait",
                                task.id], env=env, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stderr.readline()  # the bar's first line: the wait has begun
        assert task.id in first and "elapsed" in first
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        hark.tasks.delete(task.id)
    assert process.returncode == 130
    assert f"task {task.id} keeps running" in rest
    assert f"hark tasks wait {task.id}" in rest and "Traceback" not in rest


NAMES = "Tomorrow I will meet Siobhan Nguyen at the Qdrant office."


def test_speech_flags_reach_the_task_and_the_progress_bar_follows_the_stream(
        cli, tmp_path, caplog):
    from bench.speech import espeak_available, make_speech_clip

    if not espeak_available():
        pytest.skip("espeak-ng not installed")
    clip = make_speech_clip(tmp_path / "names.wav", NAMES)
    caplog.set_level("DEBUG", logger="hark_client")
    done = cli("analyze", str(clip), "--wait", "--timeout", "240", "--format", "json",
               "--model", "tiny.en", "--prompt", "A meeting.", "--hotword", "Siobhan Nguyen",
               "--hotword", "Qdrant", "--diarize", "--max-speakers", "3",
               "--vad-threshold", "0.4", "--vad-min-speech-ms", "200",
               "--vad-min-silence-ms", "800", "--vad-speech-pad-ms", "300")
    result = json.loads(done.stdout)
    assert result["speakers"][0]["speaker"] == "SPEAKER_00"
    assert all(s["speaker"] == "SPEAKER_00" for s in result["segments"])
    # The progress bar (not a terminal: a line per change) ends with the finished task.
    lines = done.stderr.splitlines()
    assert lines[-1].startswith("completed 100% (") and " task " in lines[-1]
    task_id = lines[-1].rsplit(" ", 1)[1]
    streamed = [r.getMessage() for r in caplog.records
                if f"/tasks/{task_id}/stream -> 200" in r.getMessage()]
    assert streamed, "the progress bar did not follow the event stream"
    assert not any("polling" in r.getMessage() for r in caplog.records)
    options = json.loads(cli("--json", "tasks", "get", task_id).stdout)["data"]["options"]
    assert (options["prompt"], options["hotwords"]) == ("A meeting.", ["Siobhan Nguyen",
                                                                      "Qdrant"])
    assert options["diarize"] is True and options["max_speakers"] == 3
    assert (options["vad"], options["vad_threshold"], options["vad_min_speech_ms"],
            options["vad_min_silence_ms"], options["vad_speech_pad_ms"]) == \
        (True, 0.4, 200, 800, 300)

    cli("collections", "create", "talks", "--name", "Talks")
    submitted = cli("index", "http://127.0.0.1:9/a.wav", "--collection", "talks",
                    "--no-vad", "--speakers", "2", "-q")
    other = submitted.stdout.strip()
    options = json.loads(cli("--json", "tasks", "get", other).stdout)["data"]["options"]
    assert (options["vad"], options["diarize"], options["num_speakers"]) == (False, True, 2)
    cli("tasks", "delete", other)
