"""Whisper checkpoints small enough to travel to a GPU machine (64 MiB for everything).

tiny.en's fp16 checkpoint is 75 MB and does not compress (the low byte of fp16 weights is
noise), so :func:`pack` stores every weight matrix as int8 with one fp16 scale per output
row (symmetric absmax), and biases, norms and positional embeddings as fp16: 38 MB for
tiny.en. :func:`unpack` writes an ordinary openai-whisper checkpoint of fp16 weights
again (the rounded ones). This is weight-only rounding for transport, not Hark's CPU
int8 path (``workers.asr.quantize`` also quantizes activations); its WER is measured on
both devices of the GPU check alike. base (145 MB fp16, 73 MB packed) does not fit.

Run: ``python -m bench.gpu_weights pack MODELS_DIR/tiny.en.pt OUT/tiny.en.pack.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

SUFFIX = ".pack.pt"


def _quantized(name: str, tensor: torch.Tensor) -> bool:
    return tensor.dim() >= 2 and tensor.numel() >= 4096 and "positional_embedding" not in name


def pack(checkpoint: Path, out: Path) -> Path:
    """Write ``out``: int8 rows + fp16 scales for matrices, fp16 for the rest."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    q8, scales, plain = {}, {}, {}
    for name, tensor in ckpt["model_state_dict"].items():
        t = tensor.float()
        if _quantized(name, t):
            rows = t.reshape(t.shape[0], -1)
            scale = (rows.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-8)
            q8[name] = torch.round(rows / scale).clamp(-127, 127).to(torch.int8).reshape(t.shape)
            scales[name] = scale.squeeze(1).half()
        else:
            plain[name] = tensor.half()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": ckpt["dims"], "alignment_heads": ckpt.get("alignment_heads") or [],
                "int8": q8, "scales": scales, "fp16": plain}, out)
    return out


def unpack(packed: Path, out: Path) -> Path:
    """Write an openai-whisper checkpoint (fp16) from a :func:`pack` file."""
    p = torch.load(packed, map_location="cpu", weights_only=True)
    state = dict(p["fp16"])
    for name, q in p["int8"].items():
        scale = p["scales"][name].float().reshape(-1, *([1] * (q.dim() - 1)))
        state[name] = (q.float() * scale).half()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": p["dims"], "model_state_dict": state,
                "alignment_heads": p["alignment_heads"]}, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    done = (pack if args.action == "pack" else unpack)(args.source, args.target)
    print(f"wrote {done} ({done.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
