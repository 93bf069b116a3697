"""Files to upload: opened afresh (or rewound) for every attempt, optionally watched."""

from __future__ import annotations

import io
import mimetypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ._types import FileInput, UploadCallback


class Upload:
    """A file to send as multipart ``file``: a path, bytes, or a binary file object.

    A path is opened afresh for every attempt; a file object is sent from its start (httpx
    rewinds it), so a retried upload is sent whole.
    """

    def __init__(self, source: FileInput, filename: str | None = None,
                 on_upload: UploadCallback | None = None) -> None:
        self.source = source
        self.on_upload = on_upload
        if isinstance(source, str | os.PathLike):
            self.filename = filename or Path(source).name
        elif isinstance(source, bytes | bytearray | memoryview):
            self.filename = filename or "upload"
        elif hasattr(source, "read"):
            name = getattr(source, "name", None)
            self.filename = filename or (Path(name).name if isinstance(name, str) else "upload")
        else:
            raise TypeError("file must be a path, bytes or a binary file object, "
                            f"not {type(source).__name__}")
        guessed = mimetypes.guess_type(self.filename)[0]
        self.content_type = guessed or "application/octet-stream"

    @contextmanager
    def open(self) -> Iterator[tuple[str, IO[bytes], str]]:
        if isinstance(self.source, str | os.PathLike):
            with open(self.source, "rb") as handle:
                yield self.filename, self._watched(handle), self.content_type
        elif isinstance(self.source, bytes | bytearray | memoryview):
            yield self.filename, self._watched(io.BytesIO(self.source)), self.content_type
        else:
            yield self.filename, self._watched(self.source), self.content_type  # type: ignore[arg-type]

    def _watched(self, handle: IO[bytes]) -> IO[bytes]:
        if self.on_upload is None:
            return handle
        return _ProgressReader(handle, self.on_upload)  # type: ignore[return-value]


class _ProgressReader:
    """A binary file that reports ``(sent, total)`` to ``on_upload`` as httpx reads it."""

    def __init__(self, handle: IO[bytes], on_upload: UploadCallback) -> None:
        self._handle = handle
        self._on_upload = on_upload
        self._total: int | None = None
        try:
            here = handle.tell()
            self._total = handle.seek(0, os.SEEK_END) - here
            handle.seek(here)
        except (AttributeError, OSError):
            pass
        self._sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._sent += len(chunk)
        self._on_upload(self._sent, self._total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        if whence == os.SEEK_SET and offset == 0:
            self._sent = 0
        return position

    def tell(self) -> int:
        return self._handle.tell()
