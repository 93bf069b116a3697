"""Getting a task's media onto local disk: from a database blob or a checked URL."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from core import media_store
from core.config import Settings
from core.db import Database
from core.netguard import UnsafeURLError, pin
from workers.runner import PipelineError

MAX_REDIRECTS = 5


class MediaFetchError(PipelineError):
    """The media could not be fetched (gone, unreachable, too large, unsafe)."""


def fetch_media(db: Database, media: dict[str, Any], folder: Path, settings: Settings) -> Path:
    """Write the media to a file in ``folder`` and return its path."""
    path = folder / "media"
    if "blob_id" in media:
        try:
            with db.session() as session:
                media_store.write_to(session, uuid.UUID(media["blob_id"]), path)
            return path
        except KeyError:
            if "url" not in media:  # a URL task's kept copy expired: download it again
                raise MediaFetchError("the uploaded media is no longer stored") from None
    if "url" in media:
        download(media["url"], path, settings)
        return path
    raise MediaFetchError("the task has no media")


def download(url: str, path: Path, settings: Settings) -> int:
    """Stream ``url`` to ``path``: every redirect hop checked (and connected to at the
    address that was checked), the size capped at ``MAX_REQUEST_MB``, the whole download
    (redirects included) at ``MEDIA_DOWNLOAD_TIMEOUT`` seconds."""
    limit = settings.max_request_bytes
    seconds = settings.media_download_timeout
    deadline = time.monotonic() + seconds
    timeout = httpx.Timeout(seconds, connect=min(10.0, seconds))
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = pin(url, allow_private=settings.media_allow_private)
            except UnsafeURLError as exc:
                raise MediaFetchError(f"refused media URL: {exc}") from None
            try:
                with client.stream("GET", target.url, headers=target.headers,
                                   extensions=target.extensions) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise MediaFetchError(
                            f"media URL answered HTTP {response.status_code}")
                    declared = _content_length(response)
                    if declared > limit:
                        raise MediaFetchError(f"media is larger than the {limit} byte limit")
                    return _save(response, path, limit, deadline, seconds)
            except httpx.HTTPError as exc:
                raise MediaFetchError(f"could not download media: {exc}") from None
    raise MediaFetchError("too many redirects")


def _content_length(response: httpx.Response) -> int:
    try:
        return int(response.headers.get("content-length") or 0)
    except ValueError:
        raise MediaFetchError("media URL sent an invalid Content-Length") from None


def _save(response: httpx.Response, path: Path, limit: int, deadline: float,
          seconds: float) -> int:
    size = 0
    with open(path, "wb") as out:
        for chunk in response.iter_bytes():  # as the bytes arrive: the deadline holds
            size += len(chunk)
            if size > limit:
                raise MediaFetchError(f"media is larger than the {limit} byte limit")
            if time.monotonic() > deadline:
                raise MediaFetchError(f"the media download took longer than {seconds:g} s")
            out.write(chunk)
    if size == 0:
        raise MediaFetchError("the media URL returned an empty body")
    return size
