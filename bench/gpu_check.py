"""GPU check in one command (``make gpu-check``), for a lent machine without a registry.

On real speech (``bench/corpus.py``), per model, on ``cuda`` (fp16) and then on this
machine's CPU (fp32) for comparison: load time, WER and real-time factor of the ~109 s
file and of 8 files of 22-30 s, and the many-files throughput (audio seconds per wall
second) of ``transcribe_many``, the batching code path Hark's worker uses, at batch 1, 8
and 32 over 32 clips; peak GPU memory. Writes ``gpu_check.json`` to ``$OUT`` (else
``var/gpu-check``). Exits 2 with a message where no CUDA device is present.

``--wheels DIR`` (what ``scripts/gpu-wheels.sh`` made): first make ``var/gpu-venv`` on
the system Python with its torch (``--system-site-packages``), install the carried wheels
into it with ``--no-index``, put the carried corpus on the path, unpack the carried weights
(``bench.gpu_weights``) and run again in that venv. ``--dry-run``: the same code on CPU
with tiny.en on 2 short clips, as a smoke test anywhere (``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "var" / "gpu-venv"


def bootstrap(wheels: Path, argv: list[str]) -> int:
    """Make the venv (system torch visible), install the wheels offline, run again there.

    The venv has no pip of its own (``--without-pip``: no ensurepip needed); this
    Python's pip installs into it with ``--target``."""
    python = VENV / "bin" / "python"
    found = sorted(str(p) for p in (wheels / "wheels").glob("*.whl"))
    # built for CPython 3.12 (the GPU machine's): another Python (a dry run here) uses
    # its own site-packages for those
    mine = f"{sys.version_info.major}{sys.version_info.minor}"
    found = [w for w in found if re.search(r"-cp(\d+)-cp\1-", Path(w).name) is None
             or f"-cp{mine}-cp{mine}-" in Path(w).name]
    if not found:
        print(f"gpu_check: no wheels in {wheels / 'wheels'}: run scripts/gpu-wheels.sh here")
        return 2
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                        str(VENV)], check=True)
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # a venv made from a venv sees only the base site-packages: add this one's too
    parents = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    Path(site, "hark-system-site.pth").write_text("\n".join(parents) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--no-compile", "--upgrade",
                    "--target", site, *found], check=True)
    env = dict(os.environ, HARK_GPU_VENV="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(wheels / "site")]))
    rest = [a for a in argv if a != "--wheels" and a != str(wheels)]
    if (wheels / "models").is_dir() and "--weights" not in rest:
        rest += ["--weights", str(wheels / "models")]
    return subprocess.run([str(python), "-m", "bench.gpu_check", *rest], env=env).returncode


def use_weights(weights: Path, work: Path) -> list[str]:
    """Unpack ``*.pack.pt`` from ``weights`` into ``work`` and register them as
    ``checkpoint`` entries of a ``MODELS_REGISTRY`` file; returns the model names."""
    from bench.gpu_weights import SUFFIX, unpack

    entries = {}
    for packed in sorted(weights.glob(f"*{SUFFIX}")):
        name = packed.name[: -len(SUFFIX)]
        entries[name] = {"checkpoint": unpack(packed, work / f"{name}.pt").name}
    work.mkdir(parents=True, exist_ok=True)
    (work / "registry.json").write_text(json.dumps(entries))
    os.environ["MODELS_REGISTRY"] = str(work / "registry.json")
    return sorted(entries)


class Clock:
    """Wall time with the device drained first and after."""

    def __init__(self, device: str):
        import torch

        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def __call__(self, fn, *args, **kwargs):
        self.sync()
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        return time.perf_counter() - started, out


def check_model(name: str, device: str, long_clip, shorts, many, batches) -> dict:
    """Every figure for one model on one device."""
    import torch

    from bench import corpus
    from workers.asr.transcribe import get_model, transcribe, transcribe_many

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    clock = Clock(device)
    load_s, model = clock(get_model, name, device)
    loaded = torch.cuda.memory_allocated() if cuda else 0
    out = {"model": name, "device": device, "fp16": cuda, "load_s": round(load_s, 3),
           "torch_threads": torch.get_num_threads()}
    transcribe(model, shorts[0][0], language="en")  # warm-up: kernels, caches
    if long_clip is not None:
        audio, ref = long_clip
        seconds, result = clock(transcribe, model, audio, language="en")
        out["long"] = {"audio_s": round(len(audio) / 16000, 2), "wall_s": round(seconds, 3),
                       "rtf": round(seconds / (len(audio) / 16000), 5),
                       "wer": round(corpus.wer([(ref, result["text"])]), 4)}
    audios = [a for a, _ in shorts]
    seconds, results = clock(transcribe_many, model, audios, language="en")
    total = sum(len(a) for a in audios) / 16000
    out["short"] = {"files": len(audios), "audio_s": round(total, 2), "wall_s": round(seconds, 3),
                    "rtf": round(seconds / total, 5),
                    "wer": round(corpus.wer([(r, res["text"]) for (_, r), res
                                             in zip(shorts, results, strict=True)]), 4)}
    many_s = sum(len(a) for a in many) / 16000
    out["many"] = {"files": len(many), "audio_s": round(many_s, 2), "by_batch": {}}
    for batch in batches:
        seconds, _ = clock(transcribe_many, model, many, language="en", batch_size=batch)
        out["many"]["by_batch"][str(batch)] = {"wall_s": round(seconds, 3),
                                               "audio_s_per_s": round(many_s / seconds, 2)}
    if cuda:
        out["gpu_memory_mib"] = {"weights": round(loaded / 2**20, 1),
                                 "peak": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    return out


def report(rows: list[dict]) -> str:
    """A table of the figures (one row per model and device)."""
    body = []
    for r in rows:
        many = r["many"]["by_batch"]
        long = r.get("long", {})
        body.append([r["model"], r["device"], long.get("rtf", "-"),
                     f"{100 * long['wer']:.2f}" if long else "-", r["short"]["rtf"],
                     f"{100 * r['short']['wer']:.2f}",
                     " / ".join(f"b{b}: {v['audio_s_per_s']}" for b, v in many.items()),
                     r.get("gpu_memory_mib", {}).get("peak", "-")])
    cells = [["model", "device", "RTF long", "WER % long", "RTF short", "WER % short",
              "many files, audio s/s", "GPU peak MiB"]] + [[str(c) for c in r] for r in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     for row in cells)  # bench.harness.table needs psycopg: not there


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny.en, 2 short clips")
    parser.add_argument("--wheels", type=Path, help="carried wheels (scripts/gpu-wheels.sh)")
    parser.add_argument("--weights", type=Path, help="folder of *.pack.pt (bench.gpu_weights)")
    parser.add_argument("--models", nargs="+", help="default: the carried ones, else tiny.en")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--clips", type=int, default=32, help="files of the throughput run")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU comparison")
    parser.add_argument("--no-platform", action="store_true",
                        help="skip the platform run (b, c) of the synthetic model")
    parser.add_argument("--synthetic-tokens", type=int, default=100,
                        help="tokens the large-v3-sized synthetic model says per window (0: skip)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or
                                                         ROOT / "var" / "gpu-check"))
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "gpu-work",
                        help="unpacked weights and corpus files (kept out of $OUT)")
    args = parser.parse_args(argv)
    if args.wheels and not os.environ.get("HARK_GPU_VENV"):
        return bootstrap(args.wheels, argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}, CUDA_VISIBLE_DEVICES="
              f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); this check needs a GPU. "
              "For the CPU smoke run use --dry-run.")
        return 2
    from bench import corpus

    work = args.work
    carried = use_weights(args.weights, work / "models") if args.weights else []
    # a carried bundle without tiny.en (scripts/gpu-wheels.sh) runs the synthetic parts only
    models = args.models or carried or ([] if os.environ.get("HARK_GPU_VENV") else ["tiny.en"])
    devices = ["cpu"] if args.dry_run else [args.device] + ([] if args.no_cpu else ["cpu"])
    if args.dry_run:  # the 10 s beckett clip twice: few tokens, still a batch of 2
        beckett = corpus.clips()["beckett"]
        long_clip, batches = None, (2,)
        shorts = [(beckett.audio(), beckett.reference)] * 2
        many = [a for a, _ in shorts]
    else:
        long_clip, batches = _load(corpus.long_file(work)), (1, 8, 32)
        shorts = [_load(s) for s in corpus.short_files(work)]
        many = [_load(s)[0] for s in corpus.short_files(work / "many", args.clips)]
    meta = {"dry_run": args.dry_run, "torch": torch.__version__, "models": models,
            "weights": "carried int8-rounded, dequantized to fp16 (bench/gpu_weights.py)"
            if carried else "MODELS_DIR checkpoints",
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(json.dumps(meta))
    rows = []
    for device in devices:
        for name in models:
            rows.append(check_model(name, device, long_clip, shorts, many,
                                    batches if device != "cpu" or args.dry_run else (8,)))
            print(json.dumps(rows[-1]), flush=True)
    if rows:
        print(report(rows))
    synthetic = check_synthetic(args, shorts) if args.synthetic_tokens else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps({**meta, "rows": rows,
                                                         "synthetic": synthetic}, indent=2))
    print(f"wrote {args.out / 'gpu_check.json'}")
    return 0


def check_synthetic(args, shorts) -> dict:
    """Part (a): the large-v3-sized synthetic model (``bench/gpu_synthetic.py``, random
    weights saying a fixed sentence) in fp16, Hark batched against batch 1 and against
    openai-whisper's ``transcribe``. Dry run: tiny shapes on CPU, 2 clips."""
    import numpy as np
    import torch

    from bench import gpu_synthetic

    if args.dry_run:
        dims, device, n, batches, single, tokens = gpu_synthetic.TINY, "cpu", 2, (2,), 1, 20
    else:
        dims, device, tokens = gpu_synthetic.LARGE_V3, args.device, args.synthetic_tokens
        n, batches, single = 2 * args.clips, (8, 32, 2 * args.clips), 8
    clock = Clock(device)
    build_s, model = clock(gpu_synthetic.build, dims, tokens, device)
    args.work.mkdir(parents=True, exist_ok=True)
    audios = gpu_synthetic.clips(np.concatenate([a for a, _ in shorts]), n)
    out = {"build_s": round(build_s, 2), **gpu_synthetic.measure(
        model, audios, tokens, batches, single, clock)}
    if device.startswith("cuda"):
        out["gpu_memory_mib"] = {"peak": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    print(json.dumps(out), flush=True)
    print(f"synthetic {out['model']} ({out['parameters_m']} M parameters, random weights, "
          f"{out['tokens_per_window']} tokens per 30 s window) on {device}: "
          + " / ".join(f"{k.removeprefix('hark_')}: {v['audio_s_per_s']} audio s/s, "
                       f"{v['tokens_per_s']} tok/s" for k, v in out.items()
                       if isinstance(v, dict) and "audio_s_per_s" in v)
          + f"; batched / batch 1 = {out['batched_vs_batch_1']}x, "
            f"batched / openai transcribe = {out['batched_vs_openai']}x")
    expected = gpu_synthetic.expected_text(model, tokens)
    checkpoint = None if args.no_platform else gpu_synthetic.save(
        model, args.work / f"{model.hark_name}.pt")
    del model
    gc.collect()  # the model's window pool refers back to it
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    if checkpoint is not None:
        clips = audios[: args.clips] if not args.dry_run else audios
        worker_device = "cpu" if args.dry_run else f"{args.device.partition(':')[0]}:0"
        try:  # the tiny.en bundle carries no platform wheels: an ImportError here
            from bench import gpu_platform

            out["platform"] = gpu_platform.run(checkpoint.stem, checkpoint, clips, expected,
                                               worker_device, len(clips))
        except Exception as exc:  # (a)'s figures still reach gpu_check.json
            out["platform"] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
            if args.dry_run:
                raise
        finally:
            checkpoint.unlink(missing_ok=True)
        print(json.dumps({"platform": out["platform"]}), flush=True)
    return out


def _load(item: tuple[Path, str]):
    from workers.asr.wav import read_pcm_wav

    path, reference = item
    return read_pcm_wav(str(path)), reference


if __name__ == "__main__":
    raise SystemExit(main())
