"""``python -m bench.faults.run_all`` (``make faults``): every fault script, one after another.

Each entry is a module exposing ``main() -> int`` (0 when all its checks passed). The run
needs root (network namespaces) and PostgreSQL and Redis on 127.0.0.1; the restart scripts
start private ``redis-server`` and PostgreSQL (``initdb``) instances and never touch those.
"""

from __future__ import annotations

import importlib
import sys
import time

SCRIPTS = [
    "bench.faults.multihost",
    "bench.faults.worker_kill",
    "bench.faults.redis_restart",
    "bench.faults.pg_restart",
    "bench.faults.pg_crash",
    "bench.faults.webhook_down",
    "bench.faults.delivery_kill",
]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        status = importlib.import_module(name).main()
        print(f"== {name}: {'ok' if status == 0 else f'FAILED ({status})'} "
              f"in {time.monotonic() - started:.0f}s\n", flush=True)
        if status != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
