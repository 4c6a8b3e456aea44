"""Name-seeded GICD weights that a test can afford: two VGG16s with ImageNet heads hold 273 M values.

Every tensor is :func:`tests.name_seeded.name_seeded_tensor` except the two 25088 x 4096 first classifier
layers (``*classifier.0.weight``, 103 M values each), whose weight is shared by the 7 x 7 bins of each channel:
``W[i, c * 49 + p] = A[i, c]`` with ``A`` name-seeded ``[4096, 512]`` (entry std sqrt(2 / 25088), as
``name_seeded_tensor`` would give). The gradient that GICD's attention uses still differs per channel and per
image; generating the state takes a quarter of the time. The fixture script of ``tests/fixtures/gicd/`` loads
these same weights into the official model.
"""

from __future__ import annotations

import torch

from tests.name_seeded import name_seeded_tensor

WIDE = "classifier.0.weight"
BINS = 49  # 7 x 7 average-pool bins per conv5 channel


def gicd_seeded_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The seeded tensor for every key of ``state`` (shapes and dtypes of ``state``; it may live on ``meta``)."""
    out = {}
    for name, like in state.items():
        if name.endswith(WIDE):
            rows, columns = like.shape
            per_channel = torch.empty(rows, columns // BINS, dtype=like.dtype, device="meta")
            out[name] = name_seeded_tensor(name, per_channel, BINS**-0.5).repeat_interleave(BINS, dim=1)
        else:
            out[name] = name_seeded_tensor(name, like)
    return out
