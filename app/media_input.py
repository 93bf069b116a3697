"""Turning a request's media (multipart ``file``, ``media.url``, ``media.base64``) into a
reference a worker can fetch: a checked URL, or an upload that the submission stores as a
database blob in the transaction that writes its task (:func:`core.dispatch.submit`)."""

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
from werkzeug.datastructures import FileStorage

from app.auth import current_principal
from app.bodies import json_object, unstorable
from app.errors import APIError
from core.media_probe import probe_duration
from core.media_store import Upload
from core.netguard import UnsafeURLError, check_url

SchemaFactory = Callable[[bool, bool], Schema]
MAX_FILENAME = 255  # media_blobs.filename
LIST_FIELDS = ("webhook_events", "hotwords")  # form fields that may repeat
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z", re.ASCII)


def read_request(
    schema_for: SchemaFactory, check: Callable[[dict[str, Any]], None] = lambda _o: None
) -> tuple[dict[str, Any], dict[str, Any], Upload | None]:
    """Parse options and media from multipart or JSON; run ``check(options)``; then check
    an upload's size and duration. Returns (options, media, upload): media is
    ``{"blob_id", "filename", "size", "duration"}`` for uploads (the blob is written by
    the submission, from ``upload``), ``{"url", "filename"}`` for URLs (upload None).
    """
    if request.mimetype == "multipart/form-data":
        upload = multipart_upload()
        options = schema_for(False, False).load(form_fields(LIST_FIELDS))
        check(options)
        return (options, *store_upload(upload))
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
        return options, {"url": media["url"], "filename": media.get("filename")}, None
    try:
        raw = base64.b64decode(media["base64"], validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "validation_error", "media.base64 is not valid base64",
                       {"media": {"base64": ["not valid base64"]}}) from None
    return (options, *_prepare_upload(io.BytesIO(raw), media.get("filename"), None))


def multipart_upload() -> FileStorage:
    """The multipart request's ``file`` (400 when missing), its form fields checked."""
    upload = request.files.get("file")
    if upload is None:
        raise APIError(400, "validation_error", "multipart requests need a 'file' field",
                       {"file": ["missing"]})
    _check_form(upload.filename)
    return upload


def form_fields(lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """The form as a dict: one value per field, all values (a list) for ``lists``."""
    form = request.form.to_dict()
    for name in lists:
        form.pop(name, None)
        values = request.form.getlist(name)
        if values:
            form[name] = values
    return form


def store_upload(upload: FileStorage) -> tuple[dict[str, Any], Upload]:
    """Check a multipart upload: its media reference and the :class:`Upload` that the
    submission stores with its task (see :func:`read_request`)."""
    return _prepare_upload(upload.stream, upload.filename, upload.mimetype)


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


def _prepare_upload(stream, filename: str | None,
                    content_type: str | None) -> tuple[dict[str, Any], Upload]:
    """Copy the upload to a temporary file and check its size and duration."""
    settings = current_app.config["HARK"]
    filename, content_type = _clean_filename(filename), _clean_content_type(content_type)
    tmp = tempfile.NamedTemporaryFile(prefix="hark-upload-", dir=_tmp_dir())  # noqa: SIM115
    try:
        size = _copy(stream, tmp)
        if size == 0:
            raise APIError(400, "empty_media", "the uploaded file is empty")
        tmp.flush()
        duration = probe_duration(tmp.name)
        if duration is not None and duration > settings.max_media_seconds:
            raise APIError(413, "media_too_long",
                           f"media lasts {duration:.0f} s; the limit is "
                           f"{settings.max_media_seconds:.0f} s")
    except BaseException:
        tmp.close()
        raise
    upload = Upload(file=tmp, owner=current_principal().owner, size=size, filename=filename,
                    content_type=content_type, duration=duration)
    media = {"blob_id": str(upload.blob_id), "filename": filename, "size": size,
             "duration": duration}
    return media, upload


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
