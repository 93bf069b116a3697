"""Turning a request's media (multipart ``file``, ``media.url``, ``media.base64``) into a
reference a worker can fetch: a database blob, or a checked URL."""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from marshmallow import Schema

from app.auth import current_principal
from app.bodies import json_object, unstorable
from app.errors import APIError
from app.extensions import db
from core import media_store
from core.netguard import UnsafeURLError, check_url

SchemaFactory = Callable[[bool, bool], Schema]
MAX_FILENAME = 255  # media_blobs.filename
LIST_FIELDS = ("webhook_events", "hotwords")  # form fields that may repeat
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z", re.ASCII)


def read_request(
    schema_for: SchemaFactory, check: Callable[[dict[str, Any]], None] = lambda _o: None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse options and media from multipart or JSON; run ``check(options)``; then store
    an upload. Returns (options, media): ``{"blob_id", "filename", "size", "duration"}``
    for uploads, ``{"url", "filename"}`` for URLs.
    """
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise APIError(400, "validation_error", "multipart requests need a 'file' field",
                           {"file": ["missing"]})
        _check_form(upload.filename)
        form = request.form.to_dict()
        for name in LIST_FIELDS:  # repeated form fields
            form.pop(name, None)
            values = request.form.getlist(name)
            if values:
                form[name] = values
        options = schema_for(False, False).load(form)
        check(options)
        return options, _store_upload(upload.stream, upload.filename, upload.mimetype)
    if not request.is_json:
        raise APIError(415, "unsupported_media_type",
                       "send multipart/form-data with a 'file' field, or a JSON body "
                       "with 'media': {'url': ...} or {'base64': ...}")
    options = schema_for(True, True).load(json_object())
    media = options.pop("media")
    check(options)
    if "url" in media:
        settings = current_app.config["HARK"]
        try:
            check_url(media["url"], allow_private=settings.media_allow_private)
        except UnsafeURLError as exc:
            raise APIError(400, "invalid_media_url", str(exc), {"media": {"url": [str(exc)]}}) \
                from None
        return options, {"url": media["url"], "filename": media.get("filename")}
    try:
        raw = base64.b64decode(media["base64"], validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "validation_error", "media.base64 is not valid base64",
                       {"media": {"base64": ["not valid base64"]}}) from None
    return options, _store_upload(io.BytesIO(raw), media.get("filename"), None)


def _check_form(filename: str | None) -> None:
    """Form fields and the file name must be storable text (no NUL, no lone surrogates)."""
    fields = [("file", filename or "")] + [
        (name, value) for name in request.form for value in request.form.getlist(name)]
    for name, value in fields:
        problem = unstorable(name) or unstorable(value)
        if problem:
            raise APIError(400, "validation_error", f"invalid fields: {name}: {problem}",
                           {name: [problem]})


def _clean_filename(filename: str | None) -> str | None:
    """The client's file name, kept as a label only: its last path component, at most
    ``MAX_FILENAME`` characters (the extension kept), None when nothing is left."""
    if not filename:
        return None
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and len(ext) <= 16:
            name = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME]
    return name or None


def _clean_content_type(content_type: str | None) -> str | None:
    """A well-formed ``type/subtype`` (at most 100 characters), else None."""
    if content_type and len(content_type) <= 100 and _MIME.match(content_type):
        return content_type
    return None


def _store_upload(stream, filename: str | None, content_type: str | None) -> dict[str, Any]:
    """Check size and duration, then keep the bytes in the database."""
    from workers.asr.audio import probe_duration

    settings = current_app.config["HARK"]
    filename, content_type = _clean_filename(filename), _clean_content_type(content_type)
    with tempfile.NamedTemporaryFile(prefix="hark-upload-", dir=_tmp_dir()) as tmp:
        size = _copy(stream, tmp)
        if size == 0:
            raise APIError(400, "empty_media", "the uploaded file is empty")
        tmp.flush()
        duration = probe_duration(tmp.name)
        if duration is not None and duration > settings.max_media_seconds:
            raise APIError(413, "media_too_long",
                           f"media lasts {duration:.0f} s; the limit is "
                           f"{settings.max_media_seconds:.0f} s")
        tmp.seek(0)
        with db.transaction() as session:
            blob = media_store.store(session, owner=current_principal().owner, stream=tmp,
                                     filename=filename, content_type=content_type,
                                     duration=duration)
    return {"blob_id": str(blob.id), "filename": filename, "size": size, "duration": duration}


def _copy(stream, out) -> int:
    size = 0
    while chunk := stream.read(1024 * 1024):
        out.write(chunk)
        size += len(chunk)
    return size


def _tmp_dir() -> str:
    path = current_app.config["HARK"].data_dir / "tmp"
    os.makedirs(path, exist_ok=True)
    return str(path)


def discard(media: dict[str, Any]) -> None:
    """Remove a stored upload whose task could not be created."""
    if "blob_id" in media:
        import uuid

        with db.transaction() as session:
            media_store.delete_blob(session, uuid.UUID(media["blob_id"]))
