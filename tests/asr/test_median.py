"""The sorting-network median filter that word alignment uses on CPU."""

from __future__ import annotations

import pytest
import torch
import whisper.timing

import workers.asr.transcribe  # noqa: F401  (installs the filter)
from workers.asr.median import _WHISPER_MEDIAN, median_filter


@pytest.mark.parametrize("shape", [(6, 120, 700), (4, 9), (1500,), (2, 3, 5, 11), (3, 4, 3)])
@pytest.mark.parametrize("width", [1, 3, 7, 9])
def test_same_result_as_whispers_filter(shape, width):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(width))
    x[..., ::5] = 0.5  # ties
    assert torch.equal(median_filter(x, width), _WHISPER_MEDIAN(x, width))


def test_word_alignment_uses_it():
    assert whisper.timing.median_filter is median_filter
