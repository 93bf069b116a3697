"""A webhook subscriber that is down, then failing, then back: ``python -m
bench.faults.webhook_down``.

A small ``http.server`` receiver on a free port (``WEBHOOK_ALLOW_PRIVATE=1``) subscribes
to ``task.completed``; the platform runs as the Procfile has it (gunicorn API, a model
worker, an events worker that sends webhooks, celery beat), with
``WEBHOOK_RETRY_SCHEDULE=1,2,3,5,8`` and no jitter so retries come within seconds (the
default schedule waits 5 s, 5 min, 30 min, ...). Phases:

1. receiver up: ``FAULTS_WEBHOOK_TASKS`` (10) tasks, each delivered;
2. receiver down (connection refused) for 4 s, then answering 503 with ``Retry-After: 1``
   for 3 s, while 20 more tasks complete; then it answers 204 again.

Checks: every completed task's ``task.completed`` arrives, signed with the subscription's
secret; redeliveries of one message keep its ``webhook-id`` (receivers deduplicate on it);
every delivery row ends ``succeeded`` with the failed attempts recorded; the last arrives
within the retry schedule after the receiver returns; ``/tasks/count`` equals the
listing. Writes ``bench/results/webhook_down.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bench.faults.common import FAST_RECOVERY, SLEEP, Check, audit, report
from bench.faults.counts import count_vs_listing
from bench.harness import Platform, platform
from core import webhook_signing
from core.models_webhooks import WebhookDelivery
from tests.support import free_port, wait_for

SCHEDULE = "1,2,3,5,8"
DOWN_S, FAILING_S = 4.0, 3.0


class Receiver:
    """Records each POST (time, headers, body); answers 204, or 503 while ``failing``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self.failing = False
        self.refused_answers = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.failing:
                    receiver.refused_answers += 1
                    self.send_response(503)
                    self.send_header("Retry-After", "1")
                else:
                    receiver.received.append({"at": time.monotonic(), "body": body,
                                              "headers": dict(self.headers.items())})
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def completed_tasks(self) -> Counter[str]:
        """Task id -> deliveries of its ``task.completed`` received."""
        return Counter(json.loads(r["body"])["data"]["id"] for r in self.received
                       if json.loads(r["body"])["type"] == "task.completed")


def _submit(api: str, headers: dict[str, str], n: int) -> list[str]:
    with httpx.Client(base_url=api, headers=headers, timeout=30) as http:
        return [http.post(SLEEP + "?defer=true", json={"seconds": 0}).raise_for_status()
                .json()["task_id"] for _ in range(n)]


def _deliveries(bench: Platform) -> list[WebhookDelivery]:
    with bench.app.extensions["hark"]["db"].session() as session:
        return list(session.scalars(select(WebhookDelivery)))


def main() -> int:
    tasks = int(os.environ.get("FAULTS_WEBHOOK_TASKS", "10"))
    log_dir = Path(tempfile.mkdtemp(prefix="hark-faults-webhook-"))
    receiver = Receiver(free_port())
    receiver.start()
    checks: list[Check] = []
    with platform(log_dir, WEBHOOK_ALLOW_PRIVATE="1", WEBHOOK_RETRY_SCHEDULE=SCHEDULE,
                  WEBHOOK_RETRY_JITTER="0", **FAST_RECOVERY) as bench:
        api, headers = bench.api(), bench.headers
        bench.worker("model", WORKER_CONCURRENCY="2")
        bench.events_worker()
        bench.beat()
        created = httpx.post(api + "/webhooks", headers=headers, timeout=10,
                             json={"url": receiver.url, "events": ["task.completed"]})
        secret = created.raise_for_status().json()["secret"]
        print(f"webhook_down: receiver {receiver.url}, retry schedule {SCHEDULE}s; "
              f"logs in {log_dir}", flush=True)
        first = _submit(api, headers, tasks)
        wait_for(lambda: set(first) <= set(receiver.completed_tasks()), timeout=60,
                 message="deliveries while the receiver is up")
        receiver.stop()
        down_at = time.monotonic()
        second = _submit(api, headers, 2 * tasks)
        time.sleep(DOWN_S)
        receiver.failing = True
        receiver.start()
        time.sleep(FAILING_S)
        receiver.failing = False
        back_at = time.monotonic()
        try:
            wait_for(lambda: set(second) <= set(receiver.completed_tasks()),
                     timeout=sum(map(float, SCHEDULE.split(","))) + 30,
                     message="deliveries after the receiver came back")
        except AssertionError as exc:
            print(f"  {exc}")
        last = max((r["at"] for r in receiver.received), default=back_at)
        time.sleep(2.0)  # any late duplicate arrives now
        receiver.stop()
        rows = _deliveries(bench)
        found = audit(bench, first + second)
        checks += found.checks()
        checks.append(count_vs_listing(api, headers))
    got = receiver.completed_tasks()
    missing = [t for t in first + second if got[t] == 0]
    by_id = Counter(r["headers"].get("webhook-id") for r in receiver.received)
    unsigned = sum(not webhook_signing.verify(secret, r["headers"], r["body"])
                   for r in receiver.received)
    statuses = Counter(d.status for d in rows)
    retried = [d for d in rows if d.attempts > 1]
    checks += [
        ("every completed task's task.completed was delivered", not missing,
         f"{len(got)} of {len(first) + len(second)} tasks delivered; missing {missing[:3]}"),
        ("each delivery arrived once (webhook-id)", max(by_id.values(), default=1) == 1,
         f"{len(receiver.received)} received, {len(by_id)} distinct webhook-ids"),
        ("every delivery signed with the subscription's secret", unsigned == 0,
         f"{unsigned} failed verification"),
        ("every delivery row succeeded, failed attempts recorded",
         set(statuses) == {"succeeded"} and len(retried) >= len(second),
         f"rows {dict(statuses)}; {len(retried)} needed retries (attempts "
         f"{dict(Counter(d.attempts for d in rows))}); {receiver.refused_answers} x 503 "
         "answered"),
    ]
    figures = {"tasks": len(first) + len(second), "delivered": len(got),
               "receiver_down_s": round(back_at - down_at, 2),
               "of_which_503_s": FAILING_S, "answered_503": receiver.refused_answers,
               "last_delivery_after_back_s": round(last - back_at, 2),
               "attempts": dict(Counter(d.attempts for d in rows)),
               "retry_schedule_s": SCHEDULE}
    return report("webhook_down", checks, figures, log_dir)


if __name__ == "__main__":
    raise SystemExit(main())
