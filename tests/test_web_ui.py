"""The web page at ``/``: served without a key and locked down by headers (Flask test
client), then driven end to end in headless Chromium against the real platform (gunicorn
API, a Celery worker transcribing with tiny.en), writing the README's screenshots.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import httpx
import psycopg
import pytest

from bench.speech import (
    COOKING,
    OTHER_SENTENCES,
    WEATHER,
    espeak_available,
    make_speech_clip,
)
from tests.support import ROOT, start_api, wait_for

STATIC = ROOT / "app" / "web" / "static"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMESTAMP = re.compile(r"\[\d\d:\d\d\.\d – \d\d:\d\d\.\d\]")


# ---- the page and its assets (Flask test client) ------------------------------------


def test_page_is_public_and_locked_down(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<script type="module" src="/assets/app.js"></script>' in html
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert "media-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path, mimetype", [
    ("/assets/app.js", "text/javascript"),
    ("/assets/workspace.js", "text/javascript"),
    ("/assets/transcribe.js", "text/javascript"),
    ("/assets/app.css", "text/css"),
    ("/assets/favicon.svg", "image/svg+xml"),
])
def test_assets_are_served_with_their_types(client, path, mimetype):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["ETag"]  # revalidated, so a deploy shows at once
    assert client.get(path, headers={"If-None-Match": response.headers["ETag"]}) \
        .status_code == 304


def test_unknown_assets_are_404_and_the_api_still_needs_a_key(client):
    for path in ["/assets/nope.js", "/assets/../__init__.py", "/assets/%2e%2e/__init__.py"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"] == "not_found"
    assert client.get("/tasks").status_code == 401
    assert client.get("/tasks/count").status_code == 401


def test_page_has_no_inline_code_no_cdn_and_no_inner_html():
    html = (STATIC / "index.html").read_text()
    script = "\n".join(p.read_text() for p in sorted(STATIC.glob("*.js")))
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    assert not re.search(r"\son[a-z]+=", html)  # no inline handlers
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from elsewhere
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|eval\(",
                         script)  # API text reaches the page as text only
    total = sum(p.stat().st_size for p in STATIC.iterdir())
    assert total < 64_000, f"the page's assets weigh {total} bytes"


# ---- end to end in headless Chromium ------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed: scripts/system-deps.sh installs it (apt)")
    if not espeak_available():
        pytest.skip("espeak-ng is not installed: scripts/system-deps.sh installs it (apt)")
    with sync_api.sync_playwright() as playwright:
        # Debian's Chromium, not a browser downloaded by `playwright install`.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield chromium
        chromium.close()


@pytest.fixture()
def api_server(settings_env, log_dir):
    proc, base_url = start_api(settings_env, log_dir)
    yield base_url
    proc.stop()


def drop_files(page, selector: str, paths: list[Path]) -> None:
    """Drag and drop ``paths`` onto ``selector``, as a desktop file manager would."""
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()}
             for p in paths]
    transfer = page.evaluate_handle("""(files) => {
        const transfer = new DataTransfer();
        for (const f of files) {
          const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
          transfer.items.add(new File([bytes], f.name, { type: "audio/wav" }));
        }
        return transfer;
    }""", files)
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def index_a_talk(base_url: str, headers: dict, clip: Path) -> str:
    """A collection ``talks`` with one talk being indexed, for the search section."""
    created = httpx.post(f"{base_url}/collections", headers=headers,
                         json={"collection_id": "talks", "name": "Talks"})
    assert created.status_code == 201, created.text
    with open(clip, "rb") as fh:
        submitted = httpx.post(f"{base_url}/index?defer=true", headers=headers,
                               files={"file": (clip.name, fh)},
                               data={"collection": "talks", "media_id": "cooking-show"})
    assert submitted.status_code == 202, submitted.text
    return submitted.json()["task_id"]


def finished(base_url: str, headers: dict, task_id: str) -> dict:
    return wait_for(
        lambda: (t := httpx.get(f"{base_url}/tasks/{task_id}", headers=headers).json())
        ["status"] in ("completed", "failed") and t, timeout=150, message="task to finish")


def test_the_page_end_to_end(browser, api_server, worker, embed_worker, api_key, tmp_path,
                             settings_env):
    from playwright.sync_api import expect

    base_url, headers = api_server, {"x-api-key": api_key}
    weather = make_speech_clip(tmp_path / "weather.wav", f"{WEATHER} {OTHER_SENTENCES[2]}")
    train = make_speech_clip(tmp_path / "train.wav", OTHER_SENTENCES[0])
    not_media = tmp_path / "notes.wav"
    not_media.write_bytes(b"these are notes, not audio\n" * 40)
    index_task = index_a_talk(base_url, headers, make_speech_clip(
        tmp_path / "cooking.mp3", f"{OTHER_SENTENCES[1]} {COOKING}"))
    context = browser.new_context(viewport={"width": 1180, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []  # uncaught exceptions and CSP violations
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and "Failed to load resource"
            not in msg.text and problems.append(f"console: {msg.text}"))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    expect.set_options(timeout=15_000)

    page.goto(f"{base_url}/")
    expect(page.locator("#health")).to_have_text("API ok")
    expect(page.locator("#analyze-submit")).to_be_disabled()

    # A wrong key is refused, visibly; the right one is checked, kept and unlocks the page.
    page.fill("#key-input", "hk_not-a-real-key")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-status")).to_contain_text("invalid API key")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-status")).to_contain_text("Authenticated")
    expect(page.locator("#analyze-submit")).to_be_enabled()
    assert page.evaluate("localStorage.getItem('hark.apiKey')") == api_key

    # An API error is shown with the API's message.
    page.check("input[name=source][value=url]")
    page.fill("#url-input", "ftp://example.com/talk.mp3")
    page.click("#analyze-submit")
    expect(page.locator("#analyze-error")).to_contain_text("Error 400")
    expect(page.locator("#analyze-error")).to_contain_text("http")

    # A file that is not media: accepted, then failed by the worker, with its error shown
    # (in the opened task and in its upload row, with a retry button).
    page.check("input[name=source][value=file]")
    page.set_input_files("#file-input", str(not_media))
    page.click("#analyze-submit")
    # (The worker's first task loads the model: a minute on a loaded machine.)
    expect(page.locator("#job-status")).to_contain_text("Failed", timeout=90_000)
    expect(page.locator("#analyze-error")).to_contain_text("MediaDecodeError")
    notes_row = page.locator("#uploads li[data-name='notes.wav']")
    expect(notes_row).to_contain_text("MediaDecodeError")
    assert not notes_row.inner_text().strip().endswith("null")  # nothing but the message
    expect(notes_row.get_by_role("button", name=re.compile("^Retry"))).to_be_visible()

    # Two files dropped at once: a row and a live progress bar each, both reach done.
    page.check("#words-input")
    drop_files(page, "#drop-zone", [weather, train])
    for name in ("weather.wav", "train.wav"):
        row = page.locator(f"#uploads li[data-name='{name}']")
        expect(row).to_have_attribute("data-status", "completed", timeout=150_000)
        assert row.locator("progress").evaluate("el => el.value") == 100
    expect(page.locator("#job-status")).to_contain_text("Done")  # the first one is opened
    assert page.eval_on_selector("#job-progress", "el => el.value") == 100
    expect(page.locator("#job-live")).to_contain_text("Done")  # the aria-live region
    # Followed by their event streams (signed URLs), not by polling GET /tasks/<id>.
    streams = [u for u in requests if re.search(r"/tasks/[0-9a-f-]{36}/stream\?token=", u)]
    assert len(streams) >= 3, requests  # notes, weather, train
    task_ids = {re.search(r"/tasks/([0-9a-f-]{36})/stream", u).group(1) for u in streams}
    polls = [u for u in requests if re.search(r"/tasks/[0-9a-f-]{36}$", u)]
    assert len(polls) <= 2 * len(task_ids), polls  # one read each once it ended

    expect(page.locator("#transcript")).to_be_visible()
    expect(page.locator("#analyze-error")).to_be_empty()
    transcript = page.inner_text("#segments")
    assert {"sunny", "west"} & set(re.findall(r"[a-z]+", transcript.lower())), transcript
    assert TIMESTAMP.search(transcript), transcript
    assert page.locator("#segments .word").count() >= 5  # word timestamps were asked for
    meta = page.inner_text("#transcript-meta")
    assert "tiny.en" in meta and "weather.wav" in meta and re.search(r"\ben\b", meta), meta

    # Downloads carry the key (fetched, then offered as Blob URLs); JSON is one of them.
    expect(page.locator("#downloads a")).to_have_count(4)
    with page.expect_download() as download:
        page.click("#downloads a:text-is('SRT')")
    assert download.value.suggested_filename == "weather.srt"
    assert " --> " in Path(download.value.path()).read_text()
    with page.expect_download() as download:
        page.click("#downloads a:text-is('JSON')")
    assert download.value.suggested_filename == "weather.json"
    assert '"segments"' in Path(download.value.path()).read_text()

    # The player above the transcript: playing moves the highlight word by word.
    player = page.locator("#player")
    expect(player).to_have_js_property("readyState", 4, timeout=20_000)
    page.evaluate("document.getElementById('player').play()")
    first = page.wait_for_function(
        "() => document.querySelector('#segments .word.current')?.textContent").json_value()
    page.wait_for_function("(first) => { const w = document.querySelector("
                           "'#segments .word.current'); return w && w.textContent !== first"
                           " && document.getElementById('player').currentTime > 0.5 }",
                           arg=first)
    expect(page.locator("#segments li.current")).to_have_count(1)
    page.evaluate("document.getElementById('player').pause()")
    # A click on a later segment (or, in a one-segment transcript, a later word) seeks.
    segments = page.locator("#segments li")
    target = (segments.last.locator("button.ts") if segments.count() > 1
              else page.locator("#segments .word").last)
    start = float(target.evaluate("el => el.closest('[data-start]').dataset.start"))
    assert start > 1.0
    target.click()
    assert abs(page.evaluate("document.getElementById('player').currentTime") - start) < 0.3
    expect(segments.last).to_have_class(re.compile(r"\bcurrent\b"))
    # Keyboard: Up from the last segment's time button moves focus to the one before.
    if segments.count() > 1:
        segments.last.locator("button.ts").press("ArrowUp")
        assert page.evaluate("document.activeElement.closest('li').dataset.index") == \
            str(segments.count() - 2)

    # The tasks table, refreshed once the indexing is done: the uploads, the failed one
    # (retryable) and the indexing task.
    assert finished(base_url, headers, index_task)["status"] == "completed"
    page.click("#tasks-form button[type=submit]")
    upload_row = page.locator("#task-rows tr", has_text="weather.wav")
    expect(upload_row).to_contain_text("completed")
    expect(upload_row).to_contain_text("/analyze")
    failed_row = page.locator("#task-rows tr", has_text="notes.wav")
    expect(failed_row).to_contain_text("failed")
    expect(failed_row.get_by_role("button", name=re.compile("^Retry"))).to_be_visible()
    expect(page.locator("#task-counts")).to_contain_text("1 failed")
    page.select_option("#status-filter", "failed")
    expect(page.locator("#task-rows tr")).to_have_count(1)
    page.select_option("#status-filter", "")
    expect(page.locator("#task-rows tr")).to_have_count(4)

    # Search the collection; a hit opens its task's transcript at the hit's moment. The
    # talk is one passage from 0 s; moved to start at its second sentence, the hit's
    # moment is one a player cannot be at by chance.
    indexed = finished(base_url, headers, index_task)["result"]["transcript"]["segments"]
    assert len(indexed) >= 2 and "pasta" in indexed[-1]["text"].lower(), indexed
    moment = indexed[-1]["start"]
    with psycopg.connect(settings_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE segments SET start = %s", (moment,))
    expect(page.locator("#collection-select")).to_contain_text("Talks (talks) · 1 media item")
    page.fill("#query-input", "a recipe for an Italian dinner")
    page.fill("#topk-input", "3")
    page.click("#search-form button[type=submit]")
    # The query is embedded by the embed worker: seconds on a busy machine.
    expect(page.locator("#results li").first).to_contain_text("cooking-show", timeout=60_000)
    assert "pasta" in page.inner_text("#results").lower()
    assert TIMESTAMP.search(page.inner_text("#results"))
    expect(page.locator("#search-note")).to_contain_text("result")
    hit = httpx.post(f"{base_url}/collections/talks/search", headers=headers,
                     json={"query": "a recipe for an Italian dinner", "top_k": 1}).json()
    hit = hit["results"][0]
    assert hit["task_id"] == index_task and hit["start"] == pytest.approx(moment)
    page.locator("#results li").first.get_by_role("button", name=re.compile("^Open")).click()
    expect(page.locator("#transcript-meta")).to_contain_text("cooking.mp3")
    page.wait_for_function("(at) => { const p = document.getElementById('player');"
                           " return p && p.readyState >= 1 && Math.abs(p.currentTime - at)"
                           " < 0.3 }", arg=hit["start"])
    assert "pasta" in page.inner_text("#segments li.current").lower()

    # Back to the upload's transcript for the pictures, then a phone-width one.
    upload_row.get_by_role("button", name=re.compile("^Open task")).click()
    expect(page.locator("#transcript-meta")).to_contain_text("weather.wav")
    expect(page.locator("#downloads a")).to_have_count(4)
    expect(player).to_have_js_property("readyState", 4, timeout=20_000)
    page.locator("#segments li").first.locator("button.ts").click()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "web.png"), full_page=True)
    page.locator("#transcript").screenshot(path=str(SCREENSHOTS / "web-workspace.png"))
    page.locator("#tasks").screenshot(path=str(SCREENSHOTS / "web-tasks.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "web-phone.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    page.set_viewport_size({"width": 1180, "height": 900})
    for name in ("web.png", "web-workspace.png", "web-tasks.png", "web-phone.png"):
        assert 10_000 < (SCREENSHOTS / name).stat().st_size < 400_000, name

    # A segment corrected in place: kept with the task, in its downloads from then on.
    weather_id = page.get_attribute("#uploads li[data-name='weather.wav']", "data-task")
    page.locator("#segments li").first.get_by_role("button", name="Edit segment 1").click()
    page.fill("#segments textarea", "The weather today is bright and warm.")
    page.click("#segments .seg-form button[type=submit]")
    expect(page.locator("#segments li").first).to_contain_text("bright and warm")
    corrected = httpx.get(f"{base_url}/tasks/{weather_id}/transcript?format=txt",
                          headers=headers).text
    assert corrected.startswith("The weather today is bright and warm."), corrected
    expect(page.locator("#downloads a")).to_have_count(4)

    # Delete the failed task (confirmed), then forget the key.
    page.once("dialog", lambda dialog: dialog.accept())
    failed_row.get_by_role("button", name=re.compile("^Delete")).click()
    expect(page.locator("#task-rows tr")).to_have_count(3)
    assert httpx.get(f"{base_url}/tasks/count", headers=headers).json()["failed"] == 0
    page.click("#key-forget")
    expect(page.locator("#analyze-submit")).to_be_disabled()
    assert page.evaluate("localStorage.getItem('hark.apiKey')") is None

    context.close()
    assert not problems, problems


def test_speakers_have_colours_and_names_kept_with_the_task(browser, api_server, db,
                                                            api_key):
    from playwright.sync_api import expect

    from core import lifecycle

    with db.transaction() as session:
        task = lifecycle.create_task(session, owner="alice", endpoint="/analyze", data={
            "media": {"url": "http://127.0.0.1:9/interview.wav"}, "options": {}})
    with db.transaction() as session:
        lifecycle.claim(session, task.id, worker="w@test", device="cpu")
    with db.transaction() as session:
        lifecycle.complete(session, task.id, attempt=1, result={
            "text": " Welcome. Thanks.", "language": "en", "duration": 3.0, "model": "tiny.en",
            "segments": [
                {"id": 0, "start": 0.0, "end": 1.5, "text": " Welcome.", "speaker": "SPEAKER_00"},
                {"id": 1, "start": 1.5, "end": 3.0, "text": " Thanks.", "speaker": "SPEAKER_01"}]})
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.goto(f"{api_server}/")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    page.locator("#task-rows tr", has_text="interview.wav").click()
    chips = page.locator("#segments .speaker")
    expect(chips).to_have_count(2)
    colours = [chips.nth(i).evaluate("el => getComputedStyle(el).color") for i in (0, 1)]
    assert colours[0] != colours[1], colours
    # The segment's edge and the name field's label wear its speaker's colour too.
    edges = [page.locator("#segments li").nth(i).evaluate(
        "el => getComputedStyle(el).borderLeftColor") for i in (0, 1)]
    assert edges == colours, (edges, colours)
    labels = page.locator("#speakers label")
    assert [labels.nth(i).evaluate("el => getComputedStyle(el).color")
            for i in (0, 1)] == colours
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#transcript").screenshot(path=str(SCREENSHOTS / "web-speakers.png"))
    assert 5_000 < (SCREENSHOTS / "web-speakers.png").stat().st_size < 400_000
    expect(page.locator("#player-note")).to_contain_text("no longer stored")  # not fetched
    page.fill("#speakers input[data-label='SPEAKER_00']", "Ana")
    page.click("#speakers button[type=submit]")
    expect(chips.first).to_have_text("Ana")
    expect(chips.nth(1)).to_have_text("SPEAKER_01")
    kept = httpx.get(f"{api_server}/tasks/{task.id}/transcript?format=json",
                     headers={"x-api-key": api_key}).json()
    assert kept["speaker_names"] == {"SPEAKER_00": "Ana"}
    page.reload()  # kept with the task, not in the page
    page.locator("#task-rows tr", has_text="interview.wav").click()
    expect(page.locator("#segments .speaker").first).to_have_text("Ana")
    context.close()


def test_speech_options_are_sent_with_each_submission(browser, api_server, api_key,
                                                      tmp_path):
    """VAD (on unless unticked), prompt, hotwords (a list), diarization with a number of
    speakers: labelled, reachable from the keyboard, sent with uploads (repeated form
    fields) and URLs (JSON), and kept in the created task's options."""
    from playwright.sync_api import expect

    headers = {"x-api-key": api_key}
    clip = tmp_path / "meeting.wav"
    clip.write_bytes(b"not audio, only the options matter here\n" * 20)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.goto(f"{api_server}/")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#analyze-submit")).to_be_enabled()
    expect(page.get_by_label("Skip silence (VAD)")).to_be_checked()  # the API's default
    speakers = page.get_by_label("Speakers", exact=True)
    expect(speakers).to_be_disabled()  # until diarization is asked for

    # From the keyboard: Space ticks "Label speakers", Tab goes on to the speakers field.
    page.get_by_label("Label speakers").focus()
    page.keyboard.press("Space")
    expect(page.get_by_label("Label speakers")).to_be_checked()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "speakers-input"
    page.keyboard.type("2")
    page.get_by_label("Skip silence (VAD)").uncheck()
    page.get_by_label("Prompt").fill("Weekly meeting of the search team.")
    page.get_by_label("Hotwords").fill("Siobhan Nguyen, Qdrant, ")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # phone width
    wanted = {"vad": False, "diarize": True, "num_speakers": 2,
              "prompt": "Weekly meeting of the search team.",
              "hotwords": ["Siobhan Nguyen", "Qdrant"]}

    # An upload: the options as form fields, the hotwords one field each.
    page.set_input_files("#file-input", str(clip))
    page.click("#analyze-submit")
    row = page.locator("#uploads li[data-name='meeting.wav']")
    expect(row).to_have_attribute("data-task", re.compile(r"^[0-9a-f-]{36}$"))
    task = httpx.get(f"{api_server}/tasks/{row.get_attribute('data-task')}",
                     headers=headers).json()
    options = task["data"]["options"]
    assert {k: options.get(k) for k in wanted} == wanted, options

    # A URL: the same options in the JSON body; ticking VAD again sends it on.
    page.get_by_label("Skip silence (VAD)").check()
    page.check("input[name=source][value=url]")
    page.fill("#url-input", "https://example.com/meeting.mp3")
    with page.expect_request(lambda r: r.method == "POST" and "/analyze" in r.url) as sent:
        page.click("#analyze-submit")
    body = sent.value.post_data_json
    assert {k: body.get(k) for k in wanted} == {**wanted, "vad": True}, body
    assert body["media"] == {"url": "https://example.com/meeting.mp3"}
    # Without diarization the number of speakers is not sent.
    page.get_by_label("Label speakers").uncheck()
    expect(speakers).to_be_disabled()
    with page.expect_request(lambda r: r.method == "POST" and "/analyze" in r.url) as sent:
        page.click("#analyze-submit")
    body = sent.value.post_data_json
    assert body["diarize"] is False and "num_speakers" not in body, body
    context.close()
    assert not problems, problems
