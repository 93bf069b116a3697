"""Decoding the windows of several concurrent transcriptions together (cross-task batching).

A model worker runs a pool of threads (``WORKER_BATCH_TASKS``) around one copy of the model.
Each thread runs its own task as usual (claim, heartbeat, progress, cancellation and the
attempt fence stay per task) and hands its 30 s windows to the model's :class:`WindowPool`.
The pool batches *pending windows of every thread* that share decoding options, so eight
short files queued at once are decoded in one ``whisper.decode`` batch instead of eight.

No scheduler thread: whichever waiting thread finds the model idle becomes the leader, takes
the oldest pending window and up to ``batch_size - 1`` more with the same options (from any
thread), decodes them and hands each result to its owner (flat combining). A thread alone
decodes exactly the batches it would have decoded without the pool.

Tasks taken together rarely arrive together: each still fetches and decodes its media.
A task announces itself while it does (:func:`upcoming`), and a leader whose batch is not
full waits for announced tasks, at most ``gather_seconds`` (``WORKER_BATCH_WAIT``), so
the first task's windows do not run alone while the others are a few hundred ms behind.
Everything else that drives the model (language detection, word alignment) runs through
:meth:`exclusive`, because whisper installs hooks on the shared modules while it runs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from core.config import worker_batch_wait

Decode = Callable[[torch.Tensor, Any], list]
"""``decode(mels, options) -> [(result, encoder_output), ...]``, one per mel."""

# One condition for every pool and the count of announced tasks, so a waiting leader
# hears both new windows and tasks that gave up (failed before decoding).
_COND = threading.Condition()
_upcoming = 0
_local = threading.local()
_totals = {"batches": 0, "windows": 0}  # every pool of this process, for /metrics


def decode_totals() -> dict[str, int]:
    """Batches decoded and windows in them, over every pool of this process."""
    with _COND:
        return dict(_totals)


@contextmanager
def upcoming() -> Iterator[None]:
    """Announce that this thread will decode windows soon (while it fetches and decodes
    its media); ends at its first :meth:`WindowPool.decode` or when the block exits."""
    global _upcoming
    with _COND:
        _upcoming += 1
        _local.upcoming = True
    try:
        yield
    finally:
        _arrived()


def _arrived() -> None:
    global _upcoming
    with _COND:
        if getattr(_local, "upcoming", False):
            _local.upcoming = False
            _upcoming -= 1
            _COND.notify_all()


@dataclass(eq=False)
class _Window:
    options: Any  # a frozen (hashable) whisper.DecodingOptions
    mel: torch.Tensor
    limit: int  # the owner's batch size
    outcome: tuple | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class WindowPool:
    """One model's queue of windows waiting to be decoded (see the module docstring)."""

    def __init__(self, decode: Decode, gather_seconds: float = 1.0) -> None:
        self._decode = decode
        self.gather_seconds = gather_seconds
        self._cond = _COND
        self._pending: list[_Window] = []
        self._busy = False
        self.gathering = False  # a leader is waiting for announced tasks' windows
        self.batches: deque[int] = deque(maxlen=1000)  # sizes of the latest batches

    def decode(self, mels: Sequence[torch.Tensor], options: Any,
               batch_size: int) -> list[tuple]:
        """Decode ``mels`` (one window each) with ``options``, batched with other threads'
        windows that share the options; one ``(result, encoder_output)`` per mel."""
        mine = [_Window(options, mel, max(1, batch_size)) for mel in mels]
        _arrived()
        with self._cond:
            self._pending.extend(mine)
            self._cond.notify_all()
        while True:
            with self._cond:
                while self._busy and not all(w.done for w in mine):
                    self._cond.wait()
                if all(w.done for w in mine):
                    break
                self._busy = self.gathering = True
                self._cond.notify_all()  # (tests wait for the gathering leader)
                self._cond.wait_for(self._gathered, self.gather_seconds)
                self.gathering = False
                batch = self._take()
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        for w in mine:
            if w.error is not None:
                raise w.error
        return [w.outcome for w in mine]  # type: ignore[misc]

    @property
    def waiting(self) -> int:
        """Windows queued and not yet taken into a batch."""
        with self._cond:
            return len(self._pending)

    def wait_for_waiting(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` windows are queued (tests interleave with it)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._pending) >= count, timeout)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the model for work other than batched decoding (waits for the batch in
        flight; pending windows wait for this)."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _gathered(self) -> bool:
        """No announced task is still on its way, or the next batch is full."""
        if _upcoming <= 0 or not self._pending:
            return True
        first = self._pending[0]
        return sum(w.options == first.options for w in self._pending) >= first.limit

    def _take(self) -> list[_Window]:
        """The oldest pending window and the next ones with its options (under the lock)."""
        first = self._pending[0]
        batch = [w for w in self._pending if w.options == first.options][: first.limit]
        taken = set(map(id, batch))
        self._pending = [w for w in self._pending if id(w) not in taken]
        return batch

    def _run(self, batch: list[_Window]) -> None:
        try:
            outcomes = self._decode(torch.stack([w.mel for w in batch]), batch[0].options)
        except BaseException as exc:  # every owner of the batch sees the failure
            for w in batch:
                w.error, w.done = exc, True
            if not isinstance(exc, Exception):
                raise
            return
        with self._cond:
            self.batches.append(len(batch))
            _totals["batches"] += 1
            _totals["windows"] += len(batch)
        for w, outcome in zip(batch, outcomes, strict=True):
            w.outcome, w.done = outcome, True


_POOLS_LOCK = threading.Lock()


def pool_for(model: Any, decode: Decode) -> WindowPool:
    """The process-wide pool of ``model`` (created with ``decode`` on first use; kept on
    the model, so it lives and dies with it)."""
    with _POOLS_LOCK:
        pool = getattr(model, "hark_window_pool", None)
        if pool is None:
            pool = WindowPool(decode, worker_batch_wait())
            model.hark_window_pool = pool
        return pool
