"""``GET /tasks/count`` against a full listing (``GET /tasks``, cursor paging), per status:
once at the end of each fault script, and sampled while its load runs."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from bench.faults.common import FINISHED, Check, Load


@dataclass
class Sample:
    """``GET /tasks/count`` before and after every page of ``GET /tasks`` (cursor)."""

    started: float
    ended: float
    before: dict[str, int]
    listed: Counter[str]
    after: dict[str, int]
    pages: int

    def check(self, refusals: int = 0) -> Check:
        """Exact when nothing moved meanwhile. Under load the listing's total and its
        finished counts (which only grow) must lie between the two counts, the total give or
        take the submissions refused meanwhile (``refusals``): a refused task's row is
        counted and listed until the refusal deletes it."""
        total = sum(self.listed.values())
        detail = (f"count {_nonzero(self.after)}, listing {dict(self.listed)} "
                  f"({self.pages} pages)")
        if self.before == self.after and not refusals:
            ok = total == self.after["total"] and all(
                self.listed.get(s, 0) == n for s, n in self.after.items() if s != "total")
            return "/tasks/count equals the full listing", ok, detail
        low, high = self.before["total"] - refusals, self.after["total"] + refusals
        ok = low <= total <= high and all(
            self.before[s] <= self.listed.get(s, 0) <= self.after[s] for s in FINISHED)
        return ("/tasks/count agrees with the listing (under load)", ok,
                detail + (f", {refusals} refused meanwhile" if refusals else ""))


def _page_through(http: httpx.Client, per_page: int, **query: str) -> tuple[Counter[str], int]:
    """Every task of ``GET /tasks`` (with ``query``), following ``next_cursor``."""
    listed: Counter[str] = Counter()
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"per_page": per_page, **query}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/tasks", params=params).raise_for_status().json()
        pages += 1
        listed.update(t["status"] for t in page["tasks"])
        cursor = page["next_cursor"]
        if not cursor:
            return listed, pages


def sample_counts(base_url: str, headers: dict[str, str], per_page: int = 250) -> Sample:
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        started = time.monotonic()
        before = http.get("/tasks/count").raise_for_status().json()
        listed, pages = _page_through(http, per_page)
        after = http.get("/tasks/count").raise_for_status().json()
    return Sample(started, time.monotonic(), before, listed, after, pages)


def count_vs_listing(base_url: str, headers: dict[str, str], per_page: int = 100) -> Check:
    """The check at the end, when nothing moves: ``/tasks/count`` per status equals the
    full listing, and the listing filtered by each status (``?status=``)."""
    label, ok, detail = sample_counts(base_url, headers, per_page).check()
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        counts = http.get("/tasks/count").raise_for_status().json()
        filtered = {s: sum(_page_through(http, per_page, status=s)[0].values())
                    for s in counts if s != "total"}
    wrong = {s: (n, counts[s]) for s, n in filtered.items() if n != counts[s]}
    return (label + ", and per ?status= listing", ok and not wrong,
            detail + (f"; filtered listings differ (listed, counted): {wrong}" if wrong
                      else f"; ?status= listings agree for {len(filtered)} statuses"))


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {s: n for s, n in counts.items() if n}


class CountSampler:
    """:func:`sample_counts` every ``every`` seconds while a load runs.

    Samples the API refused (503, during an outage) are counted as skipped.
    """

    def __init__(self, base_url: str, headers: dict[str, str], every: float = 1.0) -> None:
        self.base_url, self.headers, self.every = base_url, headers, every
        self.samples: list[Sample] = []
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="count-sampler")

    def __enter__(self) -> CountSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.samples.append(sample_counts(self.base_url, self.headers))
            except httpx.HTTPError:
                self.skipped += 1

    def check(self, load: Load | None = None) -> Check:
        """Every sample, allowing for the refusals ``load`` saw during it."""
        bad = []
        for sample in self.samples:
            refusals = 0 if load is None else sum(
                1 for t, code in load.timeline
                if code == 503 and sample.started <= t <= sample.ended + 1.0)
            _, ok, detail = sample.check(refusals)
            if not ok:
                bad.append(detail)
        return ("/tasks/count agrees with the listing, sampled under load", not bad,
                f"{len(self.samples)} samples, {self.skipped} skipped (API refusing); "
                f"disagreeing: {bad[:2]}")
