"""`make bench`: every benchmark in turn; each prints a table and writes bench/results/."""

from __future__ import annotations

import importlib

SCRIPTS = ["bench.submit_path", "bench.roundtrip", "bench.drain", "bench.memory",
           "bench.table_scale", "bench.whisper_platform", "bench.search_bench",
           "bench.retention_bench", "bench.asr_wer", "bench.features_overhead",
           "bench.conversation", "bench.asr_peer"]


def main() -> int:
    failures = 0
    for name in SCRIPTS:
        print(f"\n=== {name}")
        try:
            result = importlib.import_module(name).main([])
            failures += result if isinstance(result, int) else 0
        except SystemExit as exc:
            failures += bool(exc.code)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
