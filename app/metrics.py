"""Prometheus metrics at ``/metrics``.

Request latency is measured in this process. Everything else is read at scrape time
from shared state, so any API replica reports the whole platform: task counts from the
trigger-kept counters, queue depths from the broker, and worker counters, run times,
loaded models and GPU memory from the presence rows every worker process keeps fresh.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from app.auth import admin_required, public
from app.openapi import doc
from core.dispatch import MAINTENANCE_QUEUE
from core.models import TaskCount
from core.status import TaskStatus

bp = Blueprint("metrics", __name__)
BASE_QUEUES = ("cpu", "gpu", MAINTENANCE_QUEUE, "webhooks")


class PlatformCollector:
    """Reads platform-wide state when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        from core.worker_models import online_workers

        ext = self.app.extensions["hark"]
        settings = self.app.config["HARK"]
        with ext["db"].session() as session:
            counts = dict(session.execute(select(TaskCount.status, func.sum(TaskCount.n))
                                          .group_by(TaskCount.status)).all())
            workers = online_workers(session, settings.heartbeat_interval)
        tasks = GaugeMetricFamily("hark_tasks", "Tasks by status", labels=["status"])
        for status in TaskStatus:
            tasks.add_metric([status.value], float(counts.get(status.value) or 0))
        yield tasks
        yield from self._workers(workers)
        yield self._queues(ext["celery"], {q for w in workers for q in w.queues})

    @staticmethod
    def _workers(workers):
        online = GaugeMetricFamily("hark_workers_online", "Online worker processes",
                                   labels=["role", "device"])
        groups: dict[tuple[str, str], int] = {}
        for w in workers:
            groups[(w.role, w.device)] = groups.get((w.role, w.device), 0) + 1
        for labels, n in groups.items():
            online.add_metric(list(labels), n)
        yield online
        done = GaugeMetricFamily("hark_worker_tasks", "Tasks finished by live worker "
                                 "processes, by outcome", labels=["worker", "outcome"])
        load = GaugeMetricFamily("hark_model_load_seconds", "Model load time",
                                 labels=["worker", "model"])
        gpu = GaugeMetricFamily("hark_gpu_memory_bytes", "GPU memory allocated by torch",
                                labels=["worker", "device"])
        batches = GaugeMetricFamily("hark_decode_batches", "Decoding batches run by live "
                                    "worker processes (windows / batches: the mean batch "
                                    "size)", labels=["worker"])
        windows = GaugeMetricFamily("hark_decode_windows", "30 s windows decoded by live "
                                    "worker processes", labels=["worker"])
        buckets: list[float] | None = None
        counts: list[int] = []
        total, count = 0.0, 0
        for w in workers:
            stats = w.stats or {}
            for outcome, n in stats.get("tasks", {}).items():
                done.add_metric([w.id, outcome], n)
            for model, seconds in (stats.get("model_load_seconds") or {}).items():
                load.add_metric([w.id, model], seconds)
            if stats.get("gpu_memory_bytes") is not None:
                gpu.add_metric([w.id, w.device], stats["gpu_memory_bytes"])
            if stats.get("decoding"):
                batches.add_metric([w.id], stats["decoding"]["batches"])
                windows.add_metric([w.id], stats["decoding"]["windows"])
            run = stats.get("run_seconds")
            if run:
                buckets = buckets or run["buckets"]
                counts = [a + b for a, b in zip(counts or [0] * len(run["counts"]),
                                                run["counts"], strict=True)]
                total += run["sum"]
                count += run["count"]
        yield from (done, load, gpu, batches, windows)
        run_time = HistogramMetricFamily("hark_task_run_seconds",
                                         "Task run time on live worker processes")
        if buckets:
            cumulative, acc = [], 0
            for bound, n in zip([*map(str, buckets), "+Inf"], counts, strict=True):
                acc += n
                cumulative.append((bound, acc))
            run_time.add_metric([], cumulative, total)
        yield run_time

    @staticmethod
    def _queues(celery, worker_queues: set[str]):
        depth = GaugeMetricFamily("hark_queue_depth", "Messages waiting per queue",
                                  labels=["queue"])
        try:
            with celery.connection_for_read() as conn:
                channel = conn.default_channel
                for queue in sorted(set(BASE_QUEUES) | worker_queues):
                    try:
                        n = channel.queue_declare(queue=queue, passive=True).message_count
                    except Exception:  # a queue nobody declared yet is empty
                        n = 0
                    depth.add_metric([queue], n)
        except Exception:  # broker down: report no depths rather than fail the scrape
            pass
        return depth


def init_metrics(app: Flask) -> None:
    registry = CollectorRegistry()
    latency = Histogram("hark_http_request_duration_seconds", "API request latency",
                        ["method", "endpoint", "status"], registry=registry,
                        buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
    registry.register(PlatformCollector(app))
    app.extensions["hark_metrics"] = registry

    @app.before_request
    def _start_timer():
        g._started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("_started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule else "unmatched"
            latency.labels(request.method, rule, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response


def _render() -> Response:
    return Response(generate_latest(current_app.extensions["hark_metrics"]),
                    content_type=CONTENT_TYPE_LATEST)


@bp.get("/metrics")
@public
@doc("Prometheus metrics (admin key unless METRICS_PUBLIC=1)", tag="Operations",
     responses={200: "text/plain"})
def metrics():
    """Needs an admin key (``Authorization: Bearer``), unless ``METRICS_PUBLIC=1``."""
    if current_app.config["HARK"].metrics_public:
        return _render()
    from app.auth import authenticate_now

    authenticate_now()
    return admin_required(_render)()
