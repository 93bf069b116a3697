"""int8 weights for openai-whisper on CPU (dynamic quantization, fbgemm/qnnpack kernels).

``torch.ao.quantization.quantize_dynamic`` matches module types exactly, so it silently
skips openai-whisper's own ``Linear`` subclass (every projection of the model), and the
logits are a plain matmul with the token embedding. :func:`quantize_int8` therefore
swaps each whisper ``Linear`` for a plain ``nn.Linear`` sharing its tensors, quantizes
those, and gives the decoder an int8 logits projection built from the embedding (the
embedding lookup itself stays float). Convolutions, layer norms and attention stay float32.
"""

from __future__ import annotations

import types
import warnings

import torch
import whisper
from torch import nn
from torch.ao.nn.quantized import dynamic as qdynamic

MODES = ("off", "int8")


def quantized_linear_count(model: nn.Module) -> int:
    """How many int8 linear layers ``model`` holds (logits projection included)."""
    return sum(isinstance(m, qdynamic.Linear) for m in model.modules())


def _plain(linear: nn.Linear) -> nn.Linear:
    plain = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    plain.weight = linear.weight
    if linear.bias is not None:
        plain.bias = linear.bias
    return plain


def _swap_linears(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear) and type(child) is not nn.Linear:
            setattr(module, name, _plain(child))
        else:
            _swap_linears(child)


def _decoder_forward(self, x: torch.Tensor, xa: torch.Tensor, kv_cache: dict | None = None):
    """openai-whisper's ``TextDecoder.forward`` with the int8 logits projection."""
    offset = next(iter(kv_cache.values())).shape[1] if kv_cache else 0
    x = self.token_embedding(x) + self.positional_embedding[offset : offset + x.shape[-1]]
    x = x.to(xa.dtype)
    for block in self.blocks:
        x = block(x, xa, mask=self.mask, kv_cache=kv_cache)
    return self.hark_logits(self.ln(x)).float()


def quantize_int8(model: whisper.Whisper) -> whisper.Whisper:
    """Quantize ``model`` (on CPU, float32) in place to int8 linear layers; returns it."""
    if model.device.type != "cpu":
        raise ValueError("int8 dynamic quantization runs on CPU only")
    model.float()
    _swap_linears(model)
    embedding = model.decoder.token_embedding.weight
    logits = nn.Linear(embedding.shape[1], embedding.shape[0], bias=False)
    logits.weight = nn.Parameter(embedding.detach().clone(), requires_grad=False)
    model.decoder.hark_logits = logits
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # per output row: accurate
    with warnings.catch_warnings():  # torch 2.13 deprecates quantized tensors (torchao next)
        warnings.filterwarnings("ignore", message=".*quantize_per_", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear: qconfig}, inplace=True)
    model.decoder.forward = types.MethodType(_decoder_forward, model.decoder)
    model.hark_quantized = "int8"
    return model
