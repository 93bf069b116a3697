"""The ``hark`` command in a subprocess, against the live API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from tests.client.fakeserver import FakeServer, Reply
from tests.support import free_port

WAIT = 30


def hark_cli(*args: str, url: str | None = None, key: str | None = None,
             stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARK_")}
    if url:
        env["HARK_URL"] = url
    if key:
        env["HARK_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "hark_client.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60,
                          input=stdin.decode() if stdin else None)


def test_tasks_count_and_list_as_json_and_tables(api_url, api_key, hark):
    ids = [hark.diagnostics_sleep(0).id for _ in range(3)]
    counted = hark_cli("tasks", "count", "--json", url=api_url, key=api_key)
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout)["total"] == 3

    listed = hark_cli("--json", "tasks", "list", "--limit", "2", url=api_url, key=api_key)
    assert [t["id"] for t in json.loads(listed.stdout)] == ids[:0:-1]

    table = hark_cli("tasks", "list", "--status", "completed", url=api_url, key=api_key)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PROGRESS", "ENDPOINT", "CREATED"]
    assert len(lines) == 4 and all(" completed " in line for line in lines[1:])
    # Columns line up: every row starts its STATUS where the header does.
    column = lines[0].index("STATUS")
    assert all(line[column:].startswith("completed") for line in lines[1:])

    shown = hark_cli("tasks", "get", ids[0], "--url", api_url, "--api-key", api_key)
    assert shown.returncode == 0 and "id:" in shown.stdout and "completed" in shown.stdout


def test_failures_have_exit_codes_and_no_traceback(api_url, api_key, hark):
    missing = hark_cli("tasks", "get", str(uuid.uuid4()), url=api_url, key=api_key)
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert "Traceback" not in missing.stderr and missing.stdout == ""

    denied = hark_cli("tasks", "count", url=api_url, key="wrong-key")
    assert denied.returncode == 1 and "401" in denied.stderr

    failing = hark.diagnostics_sleep(0, fail=True)
    failed = hark_cli("tasks", "wait", failing.id, url=api_url, key=api_key)
    assert failed.returncode == 1 and "DiagnosticFailure" in failed.stderr

    slow = hark.diagnostics_sleep(10, defer=True)
    try:
        timed_out = hark_cli("tasks", "wait", slow.id, "--timeout", "0.3", "--json",
                             url=api_url, key=api_key)
        assert timed_out.returncode == 4 and "did not finish" in timed_out.stderr
    finally:
        deleted = hark_cli("--json", "tasks", "delete", slow.id, url=api_url, key=api_key)
        assert deleted.returncode == 0 and json.loads(deleted.stdout)["id"] == slow.id

    unreachable = hark_cli("tasks", "count", url=f"http://127.0.0.1:{free_port()}", key="k")
    assert unreachable.returncode == 3 and "could not reach" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_usage_errors_exit_2(api_url, api_key):
    assert hark_cli("tasks", "frobnicate", url=api_url, key=api_key).returncode == 2
    assert hark_cli(url=api_url).returncode == 2
    no_file = hark_cli("analyze", "/no/such/file.wav", url=api_url, key=api_key)
    assert no_file.returncode == 2 and "no such file" in no_file.stderr


def test_wait_shows_progress_and_the_finished_task(api_url, api_key, hark):
    task = hark.diagnostics_sleep(1.0, defer=True)
    waited = hark_cli("tasks", "wait", task.id, "--timeout", str(WAIT), url=api_url,
                      key=api_key)
    assert waited.returncode == 0, waited.stderr
    assert "completed 100%" in waited.stderr  # not a terminal: one line per change
    assert "status:" in waited.stdout and "completed" in waited.stdout


def test_health_and_console_script(api_url):
    healthy = hark_cli("health", url=api_url)
    assert healthy.returncode == 0 and healthy.stdout.startswith("ok")
    script = shutil.which("hark", path=str(Path(sys.executable).parent))
    assert script, "the hark console script is not installed (pip install -e ./client)"
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("hark-client ")


def test_analyze_wait_shows_progress_then_prints_the_transcript(tmp_path):
    media = tmp_path / "talk.wav"
    media.write_bytes(b"RIFF....WAVE")
    task = {"id": "t-9", "endpoint": "/analyze", "status": "running", "progress": 50}
    vtt = "WEBVTT\n\n00:00.000 --> 00:01.500\nHello world.\n"
    no_stream = Reply(405, {"error": "method_not_allowed", "message": "a proxy"})
    replies = [Reply(202, {"task_id": "t-9", "status": "assigned"}), no_stream,
               Reply(200, task),
               Reply(200, {**task, "status": "completed", "progress": 100,
                           "result": {"text": "Hello world.", "segments": []}}),
               Reply(200, vtt.encode(), {"content-type": "text/vtt"})]
    with FakeServer(*replies) as server:
        done = hark_cli("analyze", str(media), "--wait", "--words", "--translate",
                        "--format", "vtt", url=server.url, key="k")
    assert done.returncode == 0, done.stderr
    assert done.stdout == vtt
    assert "running 50%" in done.stderr and "completed 100%" in done.stderr
    calls = [(r.method, r.path) for r in server.requests]
    assert calls == [("POST", "/analyze?defer=true"), ("GET", "/tasks/t-9/stream"),
                     ("GET", "/tasks/t-9"), ("GET", "/tasks/t-9"),
                     ("GET", "/tasks/t-9/transcript?format=vtt")]
    upload = server.requests[0].body
    assert b'name="task"\r\n\r\ntranslate' in upload
    assert b'name="word_timestamps"\r\n\r\ntrue' in upload


def test_analyze_wait_on_a_failing_task_exits_1(tmp_path):
    media = tmp_path / "talk.wav"
    media.write_bytes(b"RIFF")
    failed = {"id": "t-8", "status": "failed", "progress": 0,
              "error": {"type": "MediaError", "message": "not audio"}}
    replies = [Reply(202, {"task_id": "t-8", "status": "assigned"}),
               Reply(stream=[b"event: end\ndata: {\"status\": \"failed\"}\n\n"]),
               Reply(200, failed)]
    with FakeServer(*replies) as server:
        done = hark_cli("analyze", str(media), "--wait", url=server.url, key="k")
    assert done.returncode == 1 and "MediaError: not audio" in done.stderr
    assert "Traceback" not in done.stderr
