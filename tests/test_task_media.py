"""``GET /tasks/<id>/media`` with HTTP Range, signed links, and the kept copy of URL media."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from app.signed_links import make_token
from core import lifecycle, media_store
from core.media_store import CHUNK_BYTES
from core.retention import purge_media
from tests.support import store_blob
from workers.media_copy import keep_fetched_copy

BODY = os.urandom(2 * CHUNK_BYTES + 12_345)  # three chunks, the last one short


def upload_task(db, owner: str = "alice", body: bytes = BODY) -> uuid.UUID:
    with db.transaction() as session:
        blob_id = store_blob(session, owner, body, "talk.wav", "audio/wav")
        task = lifecycle.create_task(session, owner=owner, endpoint="/analyze", data={
            "media": {"blob_id": str(blob_id), "filename": "talk.wav"}, "options": {}})
        return task.id


def test_the_whole_file_and_its_headers(client, db, auth):
    task_id = upload_task(db)
    response = client.get(f"/tasks/{task_id}/media", headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert int(response.headers["Content-Length"]) == len(BODY)
    assert response.data == BODY


@pytest.mark.parametrize("header, first, last", [
    ("bytes=0-99", 0, 99),  # the first bytes (what a browser asks first)
    (f"bytes={CHUNK_BYTES - 10}-{CHUNK_BYTES + 9}", CHUNK_BYTES - 10, CHUNK_BYTES + 9),
    (f"bytes={CHUNK_BYTES + 5}-", CHUNK_BYTES + 5, len(BODY) - 1),  # a seek: to the end
    ("bytes=-500", len(BODY) - 500, len(BODY) - 1),  # a suffix
    (f"bytes=10-{len(BODY) * 2}", 10, len(BODY) - 1),  # past the end: clipped
])
def test_ranges(client, db, auth, header, first, last):
    task_id = upload_task(db)
    response = client.get(f"/tasks/{task_id}/media", headers={**auth, "Range": header})
    assert response.status_code == 206, response.data[:200]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert int(response.headers["Content-Length"]) == last - first + 1
    assert response.data == BODY[first:last + 1]


@pytest.mark.parametrize("header", [f"bytes={len(BODY)}-", "bytes=500-100", "bytes=abc",
                                    "bytes=-0", "bytes=-"])
def test_a_bad_range_is_416(client, db, auth, header):
    task_id = upload_task(db)
    response = client.get(f"/tasks/{task_id}/media", headers={**auth, "Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert response.get_json()["error"] == "range_not_satisfiable"


def test_other_owners_and_purged_media_are_404(client, db, auth, other_key):
    task_id = upload_task(db)
    intruder = client.get(f"/tasks/{task_id}/media", headers={"x-api-key": other_key})
    assert intruder.status_code == 404 and intruder.get_json()["error"] == "not_found"
    assert client.get(f"/tasks/{task_id}/media").status_code == 401
    with db.transaction() as session:  # finished: its media is no longer in use
        lifecycle.claim(session, task_id, worker="w@test", device="cpu")
    with db.transaction() as session:
        lifecycle.complete(session, task_id, attempt=1, result={"text": "", "segments": []})
    assert purge_media(db, cutoff=lifecycle.utcnow()) == 1  # MEDIA_RETENTION_HOURS ran
    gone = client.get(f"/tasks/{task_id}/media", headers=auth)
    assert gone.status_code == 404 and gone.get_json()["message"] == "media not found"


def test_signed_links_open_media_and_stream_of_their_task_only(app, client, db, auth):
    task_id, other_task = upload_task(db), upload_task(db)
    links = client.post(f"/tasks/{task_id}/links", headers=auth).get_json()
    assert links["expires_at"] > time.time() + 60
    media = client.get(links["media_url"], headers={"Range": "bytes=0-9"})
    assert media.status_code == 206 and media.data == BODY[:10]
    assert client.get(links["stream_url"]).status_code == 200
    token = links["media_url"].split("token=")[1]
    for url in (f"/tasks/{other_task}/media?token={token}",  # another task
                f"/tasks/{task_id}/media?token={token[:-2]}xx",  # forged
                f"/tasks/{task_id}/events?token={token}",  # a route links do not open
                f"/tasks/{task_id}/media?token=nonsense"):
        assert client.get(url).status_code == 401, url
    with app.test_request_context():
        expired, _ = make_token("alice", task_id, ttl=-1)
    assert client.get(f"/tasks/{task_id}/media?token={expired}").status_code == 401
    assert client.post(f"/tasks/{task_id}/links").status_code == 401


def test_a_url_tasks_fetched_copy_is_kept_and_served(client, db, auth, tmp_path):
    with db.transaction() as session:
        task = lifecycle.create_task(session, owner="alice", endpoint="/analyze", data={
            "media": {"url": "http://127.0.0.1:9/audio/talk.mp3"}, "options": {}})
    assert client.get(f"/tasks/{task.id}/media", headers=auth).status_code == 404
    fetched = tmp_path / "media"
    fetched.write_bytes(b"ID3" + os.urandom(5000))
    media = {"url": "http://127.0.0.1:9/audio/talk.mp3"}
    blob_id = keep_fetched_copy(db, task.id, "alice", media, fetched)
    assert blob_id is not None
    response = client.get(f"/tasks/{task.id}/media", headers=auth)
    assert response.status_code == 200 and response.mimetype == "audio/mpeg"
    assert response.data == fetched.read_bytes()
    body = client.get(f"/tasks/{task.id}", headers=auth).get_json()
    assert body["data"]["media"]["blob_id"] == blob_id  # a retry reads it, retention purges it
    # Deleting the task deletes the copy with it.
    assert client.delete(f"/tasks/{task.id}", headers=auth).status_code == 200
    with db.session() as session:
        assert session.get(media_store.MediaBlob, uuid.UUID(blob_id)) is None
