"""The database crashes under a submission load: ``python -m bench.faults.pg_crash``.

:mod:`bench.faults.pg_restart` with ``pg_ctl stop -m immediate``: every server process
quits at once, with no checkpoint and no flush, and the restart replays the WAL that
reached the disk. Commits that did not wait for their flush (claims, heartbeats,
idempotency claims) may be gone; what a client was answered (a 202's task, a completion)
must not be. Writes ``bench/results/pg_crash.json``.
"""

from __future__ import annotations

from bench.faults import pg_restart


def main() -> int:
    return pg_restart.main(mode="immediate", name="pg_crash")


if __name__ == "__main__":
    raise SystemExit(main())
