"""Which function runs each endpoint's tasks. Heavy pipelines import their models lazily."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from workers.runner import PipelineError, TaskContext

Pipeline = Callable[[TaskContext], Any]


class DiagnosticFailure(PipelineError):
    """The diagnostic task was asked to fail."""


def run_sleep(ctx: TaskContext) -> dict[str, Any]:
    """Sleep for ``seconds`` (reporting progress), then succeed or fail as asked."""
    seconds = float(ctx.data.get("seconds", 0))
    started = time.monotonic()
    step = 0.1
    while (elapsed := time.monotonic() - started) < seconds:
        ctx.progress(100 * elapsed / seconds)
        time.sleep(min(step, seconds - elapsed))
    ctx.check_cancelled()
    if ctx.data.get("fail"):
        raise DiagnosticFailure(f"diagnostic task failed on purpose after {seconds:g}s")
    return {
        "slept": seconds,
        "worker": ctx.worker,
        "device": ctx.device,
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def run_analyze(ctx: TaskContext) -> Any:
    from workers.analyze import run_analyze_task

    return run_analyze_task(ctx)


def run_index(ctx: TaskContext) -> Any:
    from workers.indexing import run_index_task

    return run_index_task(ctx)


PIPELINES: dict[str, Pipeline] = {
    "/diagnostics/sleep": run_sleep,
    "/analyze": run_analyze,
    "/index": run_index,
}


def get_pipeline(endpoint: str) -> Pipeline:
    try:
        return PIPELINES[endpoint]
    except KeyError:
        raise PipelineError(f"no pipeline for endpoint {endpoint!r}") from None
