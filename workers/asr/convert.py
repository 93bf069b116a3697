"""Convert a CTranslate2 Whisper checkpoint into an openai-whisper ``.pt`` checkpoint.

Output: ``{"dims": ModelDimensions as dict, "model_state_dict": {...},
"alignment_heads": [[layer, head], ...]}`` loadable by ``whisper.load_model(path)``.
Use :func:`apply_alignment_heads` (or ``transcribe.load_model``) to install the
alignment heads, which ``whisper.load_model`` ignores for custom checkpoints.

Name mapping (CT2 -> openai-whisper)::

    encoder/conv{1,2}/{weight,bias}                -> encoder.conv{1,2}.*
    encoder/position_encodings/encodings          -> encoder.positional_embedding
                                                     (sinusoids if absent)
    encoder/layer_N/self_attention/linear_0 (qkv)  -> encoder.blocks.N.attn.{query,key,value}
    encoder/layer_N/self_attention/linear_1        -> encoder.blocks.N.attn.out
    */layer_norm/{gamma,beta}                      -> *_ln.{weight,bias}
    */ffn/linear_{0,1}                             -> *.mlp.{0,2}
    encoder/layer_norm                             -> encoder.ln_post
    decoder/embeddings/weight                      -> decoder.token_embedding.weight
    decoder/position_encodings/encodings          -> decoder.positional_embedding
    decoder/layer_N/attention/linear_0             -> decoder.blocks.N.cross_attn.query
    decoder/layer_N/attention/linear_1 (kv)        -> decoder.blocks.N.cross_attn.{key,value}
    decoder/layer_N/attention/linear_2             -> decoder.blocks.N.cross_attn.out
    decoder/layer_norm                             -> decoder.ln

Key projections have no bias in openai-whisper; CT2 stores zeros there, which are dropped
(even a non-zero key bias would only add a per-query constant that softmax cancels).
Quantized (int8/int16) sources are dequantized; bfloat16/float32 sources are stored as float32.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from workers.asr.ct2_format import read_model_bin, resolve


class ConversionError(ValueError):
    """The CTranslate2 checkpoint is not a Whisper model we can map."""


def _target_dtype(stored: dict[str, np.ndarray]) -> torch.dtype:
    """float16 on disk when the stored float matrices are float16 (float16 and
    int8_float16 models; dequantized int8 weights fit fp16), else float32."""
    big = [v for v in stored.values() if v.ndim >= 2 and v.dtype.kind == "f"]
    if big and all(v.dtype == np.float16 for v in big):
        return torch.float16
    return torch.float32


def _count_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    pat = re.compile(rf"^{prefix}/layer_(\d+)/")
    idx = {int(m.group(1)) for n in variables if (m := pat.match(n))}
    if idx != set(range(len(idx))):
        raise ConversionError(f"non-contiguous {prefix} layers: {sorted(idx)}")
    return len(idx)


def _scalar(variables: dict[str, np.ndarray], name: str) -> int | None:
    v = variables.get(name)
    return None if v is None else int(np.asarray(v).reshape(-1)[0])


def infer_dims(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """Infer openai-whisper ``ModelDimensions`` fields from CT2 tensor shapes."""
    try:
        conv1 = variables["encoder/conv1/weight"]
        emb = variables["decoder/embeddings/weight"]
    except KeyError as exc:
        raise ConversionError(f"not a CTranslate2 Whisper model: missing {exc}") from None
    n_audio_state, n_mels, _ = conv1.shape
    n_vocab, n_text_state = emb.shape
    enc_pos = variables.get("encoder/position_encodings/encodings")
    dec_pos = variables.get("decoder/position_encodings/encodings")
    return {
        "n_mels": int(n_mels),
        "n_audio_ctx": int(enc_pos.shape[0]) if enc_pos is not None else 1500,
        "n_audio_state": int(n_audio_state),
        # Whisper uses 64-dim heads everywhere; CT2 also stores num_heads explicitly.
        "n_audio_head": _scalar(variables, "encoder/num_heads") or int(n_audio_state) // 64,
        "n_audio_layer": _count_layers(variables, "encoder"),
        "n_vocab": int(n_vocab),
        "n_text_ctx": int(dec_pos.shape[0]) if dec_pos is not None else 448,
        "n_text_state": int(n_text_state),
        "n_text_head": _scalar(variables, "decoder/num_heads") or int(n_text_state) // 64,
        "n_text_layer": _count_layers(variables, "decoder"),
    }


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's encoder positional embedding (same formula as whisper.model.sinusoids)."""
    log_inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-log_inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def _map_state_dict(v: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, np.ndarray]:
    sd: dict[str, np.ndarray] = {}

    def linear(src: str, dst: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(src: str, dst: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/gamma"]
        sd[f"{dst}.bias"] = v[f"{src}/beta"]

    def split(src: str, dsts: Sequence[str | None], no_bias: Sequence[str | None]) -> None:
        weights = np.split(v[f"{src}/weight"], len(dsts), axis=0)
        biases = np.split(v[f"{src}/bias"], len(dsts), axis=0)
        for dst, w, b in zip(dsts, weights, biases, strict=True):
            sd[f"{dst}.weight"] = w
            if dst not in no_bias:
                sd[f"{dst}.bias"] = b

    for side in ("encoder", "decoder"):
        for i in range(dims[f"n_{'audio' if side == 'encoder' else 'text'}_layer"]):
            s, d = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            qkv = [f"{d}.attn.query", f"{d}.attn.key", f"{d}.attn.value"]
            split(f"{s}/self_attention/linear_0", qkv, no_bias=[f"{d}.attn.key"])
            linear(f"{s}/self_attention/linear_1", f"{d}.attn.out")
            norm(f"{s}/self_attention/layer_norm", f"{d}.attn_ln")
            if side == "decoder":
                linear(f"{s}/attention/linear_0", f"{d}.cross_attn.query")
                kv = [f"{d}.cross_attn.key", f"{d}.cross_attn.value"]
                split(f"{s}/attention/linear_1", kv, no_bias=[f"{d}.cross_attn.key"])
                linear(f"{s}/attention/linear_2", f"{d}.cross_attn.out")
                norm(f"{s}/attention/layer_norm", f"{d}.cross_attn_ln")
            linear(f"{s}/ffn/linear_0", f"{d}.mlp.0")
            linear(f"{s}/ffn/linear_1", f"{d}.mlp.2")
            norm(f"{s}/ffn/layer_norm", f"{d}.mlp_ln")

    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    enc_pos = v.get("encoder/position_encodings/encodings")
    if enc_pos is None:
        enc_pos = sinusoids(dims["n_audio_ctx"], dims["n_audio_state"])
    sd["encoder.positional_embedding"] = enc_pos
    norm("encoder/layer_norm", "encoder.ln_post")
    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    norm("decoder/layer_norm", "decoder.ln")
    return sd


def build_checkpoint(
    ct2_files: Sequence[Path | str] | Path | str, config_json: Path | str | None = None
) -> dict:
    """Build the openai-whisper checkpoint dict in memory (see module docstring)."""
    raw = read_model_bin(ct2_files)
    variables = resolve(raw)  # aliases resolved, int8/int16 dequantized to float32
    config = json.loads(Path(config_json).read_text()) if config_json else {}
    dims = infer_dims(variables)
    dtype = _target_dtype(raw.variables)
    try:
        mapped = _map_state_dict(variables, dims)
    except KeyError as exc:
        raise ConversionError(f"CTranslate2 Whisper variable missing: {exc}") from None
    state = {}
    for name, arr in mapped.items():
        # np.array copies: the parsed arrays are read-only views of the file buffer.
        state[name] = torch.from_numpy(np.array(arr)).to(dtype)
    heads = [[int(layer), int(head)] for layer, head in config.get("alignment_heads") or []]
    for layer, head in heads:
        if not (0 <= layer < dims["n_text_layer"] and 0 <= head < dims["n_text_head"]):
            raise ConversionError(f"alignment head {[layer, head]} out of range for {dims}")
    return {"dims": dims, "model_state_dict": state, "alignment_heads": heads}


def _atomic_save(obj: dict, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; workers may run as other users
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_ct2_to_whisper(
    ct2_files: list[Path] | Path, config_json: Path | None, out_path: Path
) -> Path:
    """Convert CT2 ``model.bin`` (or its split parts, in order) to a whisper ``.pt``."""
    checkpoint = build_checkpoint(ct2_files, config_json)
    out_path = Path(out_path)
    _atomic_save(checkpoint, out_path)
    return out_path


def alignment_mask(heads: Sequence[Sequence[int]], n_layer: int, n_head: int) -> torch.Tensor:
    """Boolean ``[n_layer, n_head]`` mask, sparse like whisper's ``alignment_heads`` buffer."""
    mask = torch.zeros(n_layer, n_head, dtype=torch.bool)
    for layer, head in heads:
        mask[layer, head] = True
    return mask.to_sparse()


def apply_alignment_heads(model: torch.nn.Module, heads: Sequence[Sequence[int]]) -> None:
    """Install alignment heads on a loaded whisper model (no-op for an empty list)."""
    if not heads:
        return
    dims = model.dims
    mask = alignment_mask(heads, dims.n_text_layer, dims.n_text_head)
    device = next(model.parameters()).device
    model.register_buffer("alignment_heads", mask.to(device), persistent=False)


def read_alignment_heads(checkpoint_path: Path | str) -> list[list[int]]:
    """Read the ``alignment_heads`` key of a checkpoint without loading the weights."""
    try:
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) checkpoints cannot be memory-mapped
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return [list(map(int, h)) for h in ckpt.get("alignment_heads") or []]


def main(argv: Sequence[str] | None = None) -> int:
    from workers.asr import registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", help="registry name (repeatable; default $WHISPER_MODEL)"
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="default $MODELS_DIR")
    args = parser.parse_args(argv)
    for name in args.model or [registry.DEFAULT_MODEL]:
        try:
            print(registry.ensure_checkpoint(name, args.models_dir))
        except registry.UnknownModelError as exc:
            parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
