"""Cross-task batching: concurrent transcriptions share decoding batches (WindowPool).

Interleavings are forced, not timed: the test holds the model (``exclusive``) while the
other threads queue their windows, then lets them go and reads which batches ran.
"""

from __future__ import annotations

import threading

import pytest
import torch

from workers.asr import window_pool as pools
from workers.asr.audio import decode_audio
from workers.asr.transcribe import transcribe, window_pool
from workers.asr.window_pool import WindowPool, upcoming


def upcoming_count() -> int:
    return pools._upcoming


def wait_until(condition, timeout: float = 30.0) -> None:
    """Block until ``condition()`` holds (the pool's state, not elapsed time, decides)."""
    with pools._COND:
        assert pools._COND.wait_for(condition, timeout)


class Recorder:
    """A decode function that returns each window's first value and records batches."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, list[float]]] = []
        self.fail_on = fail_on

    def __call__(self, mels: torch.Tensor, options: str) -> list[tuple]:
        self.calls.append((options, [float(m[0]) for m in mels]))
        if options == self.fail_on:
            raise RuntimeError("decoder broke")
        return [(float(m[0]), options) for m in mels]


def _submit(pool: WindowPool, values: list[float], options: str, out: dict, key: str,
            batch_size: int = 8) -> threading.Thread:
    def run() -> None:
        try:
            out[key] = pool.decode([torch.tensor([v]) for v in values], options, batch_size)
        except Exception as exc:  # noqa: BLE001 - the test reads it
            out[key] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _run_held(pool: WindowPool, jobs: list[tuple[list[float], str, int]]) -> dict:
    """Queue every job's windows while the model is held, then release it."""
    out: dict = {}
    with pool.exclusive():
        threads = [_submit(pool, values, options, out, str(k), size)
                   for k, (values, options, size) in enumerate(jobs)]
        assert pool.wait_for_waiting(sum(len(v) for v, _, _ in jobs))
    for thread in threads:
        thread.join(30)
    return out


def test_windows_of_concurrent_callers_share_a_batch_with_equal_options():
    decode = Recorder()
    pool = WindowPool(decode)
    out = _run_held(pool, [([1.0], "en", 8), ([2.0, 3.0], "en", 8), ([4.0], "de", 8)])
    # oldest first: both "en" callers in one batch, the "de" window in its own
    assert decode.calls == [("en", [1.0, 2.0, 3.0]), ("de", [4.0])]
    assert out == {"0": [(1.0, "en")], "1": [(2.0, "en"), (3.0, "en")], "2": [(4.0, "de")]}
    assert list(pool.batches) == [3, 1] and pool.waiting == 0


def test_batches_respect_the_oldest_callers_batch_size():
    decode = Recorder()
    out = _run_held(WindowPool(decode), [([1.0, 2.0, 3.0], "en", 2), ([4.0], "en", 2)])
    assert decode.calls == [("en", [1.0, 2.0]), ("en", [3.0, 4.0])]
    assert out["0"] == [(1.0, "en"), (2.0, "en"), (3.0, "en")]


def test_a_failing_batch_fails_only_its_own_callers():
    decode = Recorder(fail_on="de")
    out = _run_held(WindowPool(decode), [([1.0], "de", 8), ([2.0], "en", 8)])
    assert isinstance(out["0"], RuntimeError) and out["1"] == [(2.0, "en")]


def test_a_caller_alone_decodes_its_own_batches():
    decode = Recorder()
    pool = WindowPool(decode)
    assert pool.decode([torch.tensor([v]) for v in (1.0, 2.0, 3.0)], "en", 2) == [
        (1.0, "en"), (2.0, "en"), (3.0, "en")]
    assert list(pool.batches) == [2, 1]  # its own windows, batch_size at a time
    assert pool.decode([torch.tensor([5.0])], "en", 2) == [(5.0, "en")]


def _transcribe_held(model, jobs: list[tuple]) -> list[dict]:
    """Transcribe each (audio, prompt) in its own thread while the model is held."""
    pool = window_pool(model)
    results: list = [None] * len(jobs)

    def run(k: int, audio, prompt) -> None:
        results[k] = transcribe(model, audio, language="en", prompt=prompt,
                                word_timestamps=True)

    with pool.exclusive():
        threads = [threading.Thread(target=run, args=(k, *job)) for k, job in enumerate(jobs)]
        for thread in threads:
            thread.start()
        assert pool.wait_for_waiting(len(jobs))
        before = len(pool.batches)
    for thread in threads:
        thread.join(120)
    return results, list(pool.batches)[before:]


@pytest.mark.slow
def test_concurrent_transcriptions_batch_together_with_unchanged_results(tiny, clips):
    weather, cooking = (decode_audio(str(clips[k])) for k in ("weather", "cooking"))
    alone = [transcribe(tiny, a, language="en", word_timestamps=True) for a in (weather, cooking)]
    together, batches = _transcribe_held(tiny, [(weather, None), (cooking, None)])
    assert batches == [2]  # one decoding batch for the two tasks' windows
    assert together == alone


@pytest.mark.slow
def test_tasks_with_different_prompts_never_share_a_batch(tiny, clips):
    weather = decode_audio(str(clips["weather"]))
    prompt = "Weather report for the mountains."
    alone = [transcribe(tiny, weather, language="en", prompt=p, word_timestamps=True)
             for p in (prompt, None)]
    together, batches = _transcribe_held(tiny, [(weather, prompt), (weather, None)])
    assert batches == [1, 1]
    assert together == alone


def test_a_leader_waits_for_announced_tasks_to_fill_its_batch():
    decode = Recorder()
    pool = WindowPool(decode, gather_seconds=60)
    out: dict = {}
    arrive = threading.Event()

    def late_task() -> None:  # a task that is still fetching its media when B decodes
        with upcoming():
            arrive.wait(30)
            out["late"] = pool.decode([torch.tensor([2.0])], "en", 8)

    late = threading.Thread(target=late_task)
    late.start()
    wait_until(lambda: upcoming_count() == 1)
    early = _submit(pool, [1.0], "en", out, "early")
    wait_until(lambda: pool.gathering)  # the leader holds its batch of one open
    arrive.set()
    for thread in (late, early):
        thread.join(30)
    assert decode.calls == [("en", [1.0, 2.0])] and out["early"] == [(1.0, "en")]


def test_an_announced_task_that_leaves_without_decoding_releases_the_leader():
    decode = Recorder()
    pool = WindowPool(decode, gather_seconds=600)
    leave = threading.Event()

    def failing_task() -> None:  # e.g. its media cannot be decoded
        with upcoming():
            leave.wait(30)

    failing = threading.Thread(target=failing_task)
    failing.start()
    wait_until(lambda: upcoming_count() == 1)
    out: dict = {}
    early = _submit(pool, [1.0], "en", out, "early")
    wait_until(lambda: pool.gathering)
    leave.set()
    early.join(30)
    failing.join(30)
    assert not early.is_alive() and out["early"] == [(1.0, "en")]
