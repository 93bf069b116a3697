"""Pinning a worker to one device and choosing the queues it consumes."""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass

from core.dispatch import MAINTENANCE_QUEUE
from core.events import WEBHOOKS_QUEUE

_DEVICE = re.compile(r"^(cpu|cuda|gpu)(?::(\d+))?$")


@dataclass(frozen=True)
class DeviceSpec:
    """``cpu`` or one CUDA device by index."""

    kind: str
    index: int | None = None

    @property
    def label(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def parse_device(value: str) -> DeviceSpec:
    """Parse ``cpu``, ``cuda``, ``cuda:N`` or ``gpu:N``."""
    match = _DEVICE.match(value.strip().lower())
    if not match:
        raise ValueError(f"WORKER_DEVICE must be 'cpu' or 'cuda:N', got {value!r}")
    kind, index = match.groups()
    if kind == "cpu":
        return DeviceSpec("cpu")
    return DeviceSpec("cuda", int(index or 0))


def pin_device(spec: DeviceSpec, environ: MutableMapping[str, str] = os.environ) -> str:
    """Make only this device visible to the process; return the torch device to use.

    Must run before torch initialises CUDA (the worker's start does it before anything
    imports torch), so the process and its pool children see exactly one GPU.
    """
    environ["WORKER_DEVICE"] = spec.label
    if spec.kind == "cpu":
        environ["CUDA_VISIBLE_DEVICES"] = ""
        environ["HARK_TORCH_DEVICE"] = "cpu"
        return "cpu"
    environ["CUDA_VISIBLE_DEVICES"] = str(spec.index)
    environ["HARK_TORCH_DEVICE"] = "cuda:0"
    return "cuda:0"


def queues_for(spec: DeviceSpec, extra: str = "") -> list[str]:
    """The device-class queue, the device's own queue, maintenance, plus any extras."""
    if spec.kind == "cpu":
        queues = ["cpu"]
    else:
        queues = ["gpu", f"gpu.{spec.index}"]
    queues.append(MAINTENANCE_QUEUE)
    return _with_extra(queues, extra)


def events_queues(extra: str = "") -> list[str]:
    """An events worker's queues: webhook deliveries and maintenance, plus any extras."""
    return _with_extra([WEBHOOKS_QUEUE, MAINTENANCE_QUEUE], extra)


def _with_extra(queues: list[str], extra: str) -> list[str]:
    queues += [q.strip() for q in extra.split(",") if q.strip() and q.strip() not in queues]
    return queues
