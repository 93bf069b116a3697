# Generated from hark_client/_async/client.py by scripts/generate_sync.py: do not edit.
# Change the async code, then run `python scripts/generate_sync.py`.
"""The client: every API operation as a method (``Client`` is generated from ``AsyncClient``).

Both talk to a Hark server; use them as (async) context managers or close them.
``base_url`` defaults to ``$HARK_URL`` (else ``http://127.0.0.1:8000``), ``api_key`` to
``$HARK_API_KEY``. ``timeout`` is per HTTP request (30 s unless ``http_client`` brings its
own); ``retries`` is a :class:`RetryConfig` or a number of retries. Every method takes
``retries=`` and ``request_timeout=`` to override them for one call.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx

from .. import _operations as ops
from .._base import (
    BaseClient,
    Call,
    connection_error,
    deadline_after,
    finished,
    is_answer,
    log_request,
    log_response,
    notify_sync,
    open_upload,
    remaining,
    sleep_sync,
)
from .._config import DEFAULT_TIMEOUT, RetryConfig
from .._types import (
    NOT_GIVEN,
    FileInput,
    NotGiven,
    ProgressCallback,
    RequestTimeout,
    Retries,
    Timeout,
    UploadCallback,
)
from ..models import Health, Page, SearchHit, Task
from ..models_platform import Account, ModelCatalog, Worker
from .resources import Collections, Tasks, Webhooks

T = TypeVar("T")


class Client(BaseClient):
    """Talks to a Hark server; see the module docstring for the settings."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: Timeout = None,
        retries: RetryConfig | int | None = None,
        http_client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT)
        self._attach()

    def _attach(self) -> None:
        self.tasks = Tasks(self)
        self.collections = Collections(self)
        self.webhooks = Webhooks(self)

    def with_options(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, retries: Retries = None,
                     headers: Mapping[str, str] | None = None) -> Client:
        """A copy with other defaults, sharing this client's connections."""
        clone: Client = self._copy_with(timeout, retries, headers)
        return clone

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not that of an ``http_client`` you passed in)."""
        if self._owns_http:
            self._http.close()


    def request(self, call: Call[T], *, retries: Retries = None,
                      request_timeout: RequestTimeout = NOT_GIVEN) -> T:
        """Send ``call``, retrying as configured; its parsed answer or a :class:`HarkError`.

        Every attempt carries the same headers, so a submission's ``Idempotency-Key``
        is the same on each of its retries.
        """
        policy = self._policy(retries)
        retry = 0
        while True:
            retry += 1
            with open_upload(call) as file:
                request = self._build(self._http, call, file, request_timeout)
                log_request(request, self._secrets)
                try:
                    response = self._http.send(request)
                except httpx.TransportError as exc:
                    delay = self._retry_delay(policy, retry, error=exc)
                    if delay is None:
                        raise connection_error(exc, str(request.url)) from exc
                else:
                    log_response(response, self._secrets)
                    if is_answer(call, response):
                        return self._answer(call, response)
                    delay = self._retry_delay(policy, retry, response=response)
                    if delay is None:
                        return self._answer(call, response)
            sleep_sync(delay)

    def health(self, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Health:
        """The server's health; ``.ok`` is False (not an error) when it is degraded."""
        return self.request(ops.health(), retries=retries,
                                  request_timeout=request_timeout)

    def me(self, *, retries: Retries = None,
                 request_timeout: RequestTimeout = NOT_GIVEN) -> Account:
        """Who the API key belongs to, and the limits that apply to it."""
        return self.request(ops.me(), retries=retries, request_timeout=request_timeout)

    def models(self, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> ModelCatalog:
        """The transcription models the platform can run, and the default one."""
        return self.request(ops.models(), retries=retries,
                                  request_timeout=request_timeout)

    def workers(self, *, retries: Retries = None,
                      request_timeout: RequestTimeout = NOT_GIVEN) -> builtins.list[Worker]:
        """The online workers (admin keys only: :class:`PermissionDeniedError` otherwise)."""
        page: Page[Worker] = self.request(ops.workers(), retries=retries,
                                                request_timeout=request_timeout)
        return page.items

    def analyze(
        self,
        file: FileInput | None = None,
        *,
        url: str | None = None,
        filename: str | None = None,
        model: str | None = None,
        language: str | None = None,
        task: str | None = None,
        word_timestamps: bool | None = None,
        priority: int | None = None,
        device: str | None = None,
        queue: str | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
        vad: bool | None = None,
        vad_threshold: float | None = None,
        vad_min_speech_ms: int | None = None,
        vad_min_silence_ms: int | None = None,
        vad_speech_pad_ms: int | None = None,
        prompt: str | None = None,
        hotwords: Sequence[str] | None = None,
        diarize: bool | None = None,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_upload: UploadCallback | None = None,
        idempotency_key: str | None = None,
        retries: Retries = None,
        request_timeout: RequestTimeout = NOT_GIVEN,
    ) -> Task:
        """Transcribe (or translate) a file or URL.

        Returns the submitted task at once; with ``wait=True`` it returns the completed
        task (``.transcript`` holds the result) or raises :class:`TaskFailedError`, or
        :class:`WaitTimeoutError` after ``timeout`` seconds. The server does the waiting
        (a notified wait, no polling) unless ``on_progress`` is given: then the client
        follows the task's event stream (``tasks.stream``, polling where it is
        not available) and calls ``on_progress(task)`` as the task advances. ``on_upload(sent,
        total)`` follows the upload of a file. One ``idempotency_key`` (generated unless
        given) is sent with every retry of the submission.

        Speech options (None leaves the server's default): ``vad`` (default True) decodes
        only the speech Silero VAD finds, tuned by ``vad_threshold`` (speech probability,
        0-1 exclusive; 0.5), ``vad_min_speech_ms`` (250), ``vad_min_silence_ms`` (1000)
        and ``vad_speech_pad_ms`` (400), each 0-60000. ``prompt`` is the text Whisper is
        conditioned on (spellings, style) and ``hotwords`` a list of names and terms put
        in front of it; together they must fit Whisper's prompt budget. ``diarize=True``
        labels segments and words with their ``speaker``; give ``num_speakers`` (exact)
        or ``min_speakers``/``max_speakers`` (1-20).
        """
        speech = {"vad": vad, "vad_threshold": vad_threshold,
                  "vad_min_speech_ms": vad_min_speech_ms,
                  "vad_min_silence_ms": vad_min_silence_ms,
                  "vad_speech_pad_ms": vad_speech_pad_ms, "prompt": prompt,
                  "hotwords": hotwords, "diarize": diarize, "num_speakers": num_speakers,
                  "min_speakers": min_speakers, "max_speakers": max_speakers}
        options = ops.analyze_options(model, language, task, word_timestamps, priority,
                                      device, queue, webhook, webhook_events, **speech)
        return self._submit("/analyze", file, url, filename, options, wait, timeout,
                                  on_progress, on_upload, idempotency_key, retries,
                                  request_timeout)

    def index(
        self,
        file: FileInput | None = None,
        *,
        collection: str,
        url: str | None = None,
        filename: str | None = None,
        media_id: str | None = None,
        reindex_if_exists: bool | None = None,
        model: str | None = None,
        language: str | None = None,
        task: str | None = None,
        word_timestamps: bool | None = None,
        priority: int | None = None,
        device: str | None = None,
        queue: str | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
        vad: bool | None = None,
        vad_threshold: float | None = None,
        vad_min_speech_ms: int | None = None,
        vad_min_silence_ms: int | None = None,
        vad_speech_pad_ms: int | None = None,
        prompt: str | None = None,
        hotwords: Sequence[str] | None = None,
        diarize: bool | None = None,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_upload: UploadCallback | None = None,
        idempotency_key: str | None = None,
        retries: Retries = None,
        request_timeout: RequestTimeout = NOT_GIVEN,
    ) -> Task:
        """Transcribe a file or URL into ``collection`` for search; the other options,
        the speech options included, are those of :meth:`analyze`."""
        speech = {"vad": vad, "vad_threshold": vad_threshold,
                  "vad_min_speech_ms": vad_min_speech_ms,
                  "vad_min_silence_ms": vad_min_silence_ms,
                  "vad_speech_pad_ms": vad_speech_pad_ms, "prompt": prompt,
                  "hotwords": hotwords, "diarize": diarize, "num_speakers": num_speakers,
                  "min_speakers": min_speakers, "max_speakers": max_speakers}
        options = ops.index_options(
            collection, media_id, reindex_if_exists, model=model, language=language,
            task=task, word_timestamps=word_timestamps, priority=priority, device=device,
            queue=queue, webhook=webhook, webhook_events=webhook_events, **speech)
        return self._submit("/index", file, url, filename, options, wait, timeout,
                                  on_progress, on_upload, idempotency_key, retries,
                                  request_timeout)

    def diagnostics_sleep(
        self,
        seconds: float,
        *,
        fail: bool = False,
        priority: int | None = None,
        device: str | None = None,
        queue: str | None = None,
        defer: bool = False,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        idempotency_key: str | None = None,
        retries: Retries = None,
        request_timeout: RequestTimeout = NOT_GIVEN,
    ) -> Task:
        """A task that sleeps on a worker, then completes or fails (servers with DIAGNOSTICS=1).

        ``defer=False`` lets the server hold the request until the task finishes (up to
        ``timeout``, 30 s by default), ``defer=True`` returns at once. ``wait=True`` then
        waits (``tasks.wait``) until it is finished and raises :class:`TaskFailedError`
        if it failed.
        """
        deadline = deadline_after(timeout)
        call = ops.diagnostics_sleep(seconds, fail, priority, device, queue, defer, timeout,
                                     idempotency_key)
        submitted = self.request(call, retries=retries, request_timeout=request_timeout)
        if not wait:
            return submitted
        if submitted.finished:
            return finished(submitted)
        return self.tasks.wait(submitted.id, timeout=remaining(deadline),
                                     on_progress=on_progress, retries=retries,
                                     request_timeout=request_timeout)

    def transcript(self, task_id: str, format: str = "txt", *, retries: Retries = None,
                         request_timeout: RequestTimeout = NOT_GIVEN) -> str:
        """A completed analysis as ``txt``, ``srt``, ``vtt`` or ``json`` text."""
        return self.request(ops.transcript(task_id, format), retries=retries,
                                  request_timeout=request_timeout)

    def search(self, query: str, top_k: int = 10, *, mode: str | None = None,
                     collections: Sequence[str] | None = None, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN,
                     ) -> builtins.list[SearchHit]:
        """The ``top_k`` best passages over all your collections (or those in
        ``collections``, 1-100 ids; one that is not yours is a :class:`NotFoundError`),
        best first; each hit names its ``collection_id``. ``mode`` is that of
        ``collections.search`` (None: the server's default, hybrid).

        Before 0.2 this was ``search(collection_id, query, top_k)``: that call is now
        ``collections.search(collection_id, query, top_k)`` or
        ``search(query, top_k, collections=[collection_id])``; the old form is refused.
        """
        if isinstance(top_k, str):
            raise TypeError("search(query, top_k=10, *, mode=None, collections=None) searches "
                            "all your collections; to search one, call "
                            "collections.search(collection_id, query) or pass "
                            "collections=[collection_id]")
        call = ops.search_all(query, top_k, mode, collections)
        return (self.request(call, retries=retries,
                                   request_timeout=request_timeout)).items

    def _submit(self, endpoint: str, file: FileInput | None, url: str | None,
                      filename: str | None, options: dict[str, Any], wait: bool,
                      timeout: float | None, on_progress: ProgressCallback | None,
                      on_upload: UploadCallback | None, idempotency_key: str | None,
                      retries: Retries, request_timeout: RequestTimeout) -> Task:
        """Submit; with ``wait``, let the server wait (202: poll for what is left)."""
        deadline = deadline_after(timeout)
        defer, server_timeout = ops.server_wait(wait and on_progress is None, timeout)
        call = ops.submit_media(endpoint, file, url, filename, options, defer,
                                server_timeout, idempotency_key, on_upload)
        task = self.request(call, retries=retries, request_timeout=request_timeout)
        if not wait:
            return task
        if task.finished:
            notify_sync(on_progress, task)
            return finished(task)
        return self.tasks.wait(task.id, timeout=remaining(deadline),
                                     on_progress=on_progress, retries=retries,
                                     request_timeout=request_timeout)
