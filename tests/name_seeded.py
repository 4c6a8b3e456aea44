"""Deterministic, name-seeded weights: each tensor drawn from a generator seeded by a hash of its name.

Used to compare a port with its official code without released weights: both models get the same tensor
under the same state-dict key, whatever their construction order. Scales keep activations in a useful
range: weights ~ N(0, 2 / fan_in), biases ~ N(0, 0.05^2), BN affine ~ N(1, 0.1^2) / N(0, 0.1^2),
running mean ~ N(0, 0.1^2), running variance ~ U(0.5, 1.5), ``num_batches_tracked`` = 0.
"""

from __future__ import annotations

import hashlib
import math

import torch


def name_generator(name: str) -> torch.Generator:
    """A CPU generator seeded by the first 8 bytes of sha256(name)."""
    seed = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little") % (2**63)
    return torch.Generator().manual_seed(seed)


def name_seeded_tensor(name: str, like: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The tensor for state-dict key ``name`` with the shape and dtype of ``like`` (``scale`` multiplies it)."""
    shape, generator = tuple(like.shape), name_generator(name)
    if name.endswith("num_batches_tracked"):
        return torch.zeros_like(like)
    if name.endswith("running_var"):
        value = 0.5 + torch.rand(shape, generator=generator, dtype=torch.float64)
    elif name.endswith("running_mean"):
        value = 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
    elif like.ndim == 1 and name.endswith("weight"):  # a norm layer's scale
        value = 1.0 + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
    elif like.ndim == 1:  # biases and norm shifts
        value = (0.05 if name.endswith("bias") else 0.1) * torch.randn(
            shape, generator=generator, dtype=torch.float64
        )
    else:
        fan_in = math.prod(shape[1:])
        value = math.sqrt(2.0 / fan_in) * torch.randn(shape, generator=generator, dtype=torch.float64)
    return (value * scale).to(like.dtype)


def name_seeded_state(
    state: dict[str, torch.Tensor], scales: dict[str, float] | None = None
) -> dict[str, torch.Tensor]:
    """A state dict with every entry replaced by its name-seeded tensor; ``scales`` maps key prefixes to factors."""
    out = {}
    for name, like in state.items():
        factor = 1.0
        for prefix, value in (scales or {}).items():
            if name.startswith(prefix):
                factor = value
        out[name] = name_seeded_tensor(name, like, factor)
    return out
