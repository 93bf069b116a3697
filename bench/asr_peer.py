"""Hark end to end against faster-whisper's batched int8 pipeline, same run, same weights.

For each model (tiny.en, base), on real speech from ``bench/corpus.py``:

  long   one ~109 s file
  short  8 files of 22-30 s submitted at once

Hark: ``POST /analyze`` (upload -> completed) through the real API and one real worker
in its default pool (one process taking ``WORKER_BATCH_TASKS`` tasks at once, their
windows decoded together; ``--batch-tasks``), or ``--concurrency N`` processes of one task
each; model preloaded.
Peer: ``faster_whisper``'s ``BatchedInferencePipeline`` (int8, batch 8) in this process on
the same CTranslate2 files, options pinned to Hark's (``bench/peer_engine.py``); for the
8 files both one call per file and all 8 pooled into shared batches. Same cores (the peer
gets as many threads as torch uses here), runs interleaved, medians of ``--runs``. Prints
wall times, the ratio Hark / peer and the WER of each side.

VAD: ``--vad off`` (default): Hark ``vad=false``, peer ``vad_filter=False`` decoding
Hark's own windows, so both see identical windows. ``--vad on``: Hark's default Silero VAD
against the peer's (its own VAD and merging; pooling is then not available).

Engine: ``--engine ct2`` runs Hark's worker on its CTranslate2 engine (``WHISPER_ENGINE``,
int8 on CPU like the peer) instead of openai-whisper; one engine a run.

Run: ``python -m bench.asr_peer [--models tiny.en base] [--runs 3] [--vad off|on]``;
``--quick``: one run, tiny.en only (a smoke test). Needs ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import corpus
from bench.harness import platform, post_analyze, post_together, table, write_results


def hark_long(bench, path: Path, fields: dict) -> tuple[float, list[str]]:
    started = time.perf_counter()
    text = post_analyze(bench, path, fields)
    return time.perf_counter() - started, [text]


def timed(fn, *args) -> tuple[float, list[str]]:
    started = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - started, out if isinstance(out, list) else [out]


def measure(bench, name: str, runs: int, vad: bool, threads: int, work: Path) -> list[dict]:
    """Interleaved runs of every (workload, side) for one model; one row per pair."""
    from bench.peer_engine import Peer
    from workers.asr.wav import read_pcm_wav

    long_path, long_ref = corpus.long_file(work)
    shorts = corpus.short_files(work)
    short_paths, short_refs = [p for p, _ in shorts], [r for _, r in shorts]
    long_audio = read_pcm_wav(str(long_path))
    short_audios = [read_pcm_wav(str(p)) for p in short_paths]
    peer = Peer(name, threads, vad)
    fields = {"model": name, "language": "en", "vad": "true" if vad else "false"}
    cases = {
        ("long", "hark"): lambda: hark_long(bench, long_path, fields),
        ("long", "peer"): lambda: timed(peer.transcribe, long_audio),
        ("short", "hark"): lambda: post_together(bench, short_paths, fields),
        ("short", "peer"): lambda: timed(lambda: [peer.transcribe(a) for a in short_audios]),
    }
    if not vad:
        cases[("short", "peer pooled")] = lambda: timed(peer.transcribe_pooled, short_audios)
    refs = {"long": [long_ref], "short": short_refs}
    for fn in cases.values():  # warm-up: first task on the worker, first peer call
        fn()
    times: dict[tuple, list[float]] = {k: [] for k in cases}
    texts: dict[tuple, list[str]] = {}
    for run in range(runs):
        order = list(cases) if run % 2 == 0 else list(reversed(cases))  # drift hits all alike
        for key in order:
            seconds, texts[key] = cases[key]()
            times[key].append(seconds)
    rows = []
    for (workload, side), values in times.items():
        pairs = list(zip(refs[workload], texts[(workload, side)], strict=True))
        rows.append({"model": name, "workload": workload, "side": side,
                     "median_s": statistics.median(values), "runs_s": values,
                     "wer": corpus.wer(pairs)})  # fmt: skip
    return rows


def ratios(rows: list[dict]) -> list[list[object]]:
    """Table rows: model, workload, Hark s, peer s, Hark/peer, WERs."""
    by = {(r["model"], r["workload"], r["side"]): r for r in rows}
    out = []
    for (model, workload, side), r in by.items():
        if side == "hark":
            continue
        hark = by[(model, workload, "hark")]
        out.append([model, workload, side, hark["median_s"], r["median_s"],
                    f"{hark['median_s'] / r['median_s']:.2f}x",
                    f"{100 * hark['wer']:.2f}", f"{100 * r['wer']:.2f}"])  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vad", choices=("off", "on"), default="off")
    parser.add_argument("--hark-quantize", choices=("off", "int8"), default=None,
                        help="Hark's CPU weights (default: the registry's, WHISPER_QUANTIZE)")
    parser.add_argument("--batch-tasks", type=int, default=None,
                        help="Hark's WORKER_BATCH_TASKS (default: the worker's, 8)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="Hark's WORKER_CONCURRENCY: processes of one task each "
                             "(no cross-task batching)")
    parser.add_argument("--worker-threads", type=int, default=None,
                        help="Hark's WORKER_THREADS (default: cores / processes)")
    parser.add_argument("--engine", choices=("whisper", "ct2"), default=None,
                        help="Hark's engine (WHISPER_ENGINE; default: the registry's, whisper)")
    parser.add_argument("--quick", action="store_true", help="one run, tiny.en only")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.runs = ["tiny.en"], 1
    try:
        import faster_whisper  # noqa: F401
        import torch
    except ImportError as exc:
        print(f"asr_peer: skipped, {exc.name} is missing: pip install -e '.[bench]'")
        return 1
    threads = torch.get_num_threads()
    vad = args.vad == "on"
    env = {"PRELOAD_MODELS": ",".join(args.models)}
    if args.hark_quantize:
        env["WHISPER_QUANTIZE"] = args.hark_quantize
    if args.engine:
        env["WHISPER_ENGINE"] = args.engine
    if args.worker_threads:
        env["WORKER_THREADS"] = str(args.worker_threads)
    if args.concurrency:
        pool = {"WORKER_CONCURRENCY": str(args.concurrency), "WORKER_BATCH_TASKS": "1"}
        shape = f"{args.concurrency} process(es) of one task"
    else:
        pool = {"WORKER_CONCURRENCY": "", "WORKER_BATCH_TASKS": str(args.batch_tasks or "")}
        shape = f"one process batching {args.batch_tasks or 'the default'} tasks"
    print(f"models {', '.join(args.models)}; {args.runs} run(s), medians; {threads} cores; "
          f"peer {threads} threads; Hark {shape}, "
          f"{args.worker_threads or 'cores / processes'} torch threads; engine "
          f"{args.engine or 'registry default'}; VAD {args.vad} both "
          f"sides (Hark vad={str(vad).lower()}, peer vad_filter={vad}); Hark weights "
          f"{args.hark_quantize or 'registry default'}, peer int8 batch 8; greedy, "
          "language en, segment timestamps on both sides")
    with tempfile.TemporaryDirectory(prefix="hark-peer-") as tmp, \
            platform(Path(tmp) / "platform", **env) as bench:
        bench.worker(name="whisper", **pool)
        rows = []
        for name in args.models:
            rows += measure(bench, name, args.runs, vad, threads, Path(tmp) / name)
    print(table(ratios(rows), ["model", "workload", "peer", "Hark s", "peer s",
                               "Hark / peer", "Hark WER %", "peer WER %"]))
    path = write_results("asr_peer", {"runs": args.runs, "vad": args.vad, "threads": threads,
                                      "engine": args.engine,
                                      "hark_quantize": args.hark_quantize,
                                      "concurrency": args.concurrency,
                                      "batch_tasks": args.batch_tasks,
                                      "worker_threads": args.worker_threads, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
