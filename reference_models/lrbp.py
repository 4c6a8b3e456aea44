"""Low-rank bilinear pooling (LRBP, Kong & Fowlkes 2017) as a small torch layer.

For a set of items X = [x_1 .. x_N] (x_n in R^D: the locations of a feature map, or the images of a
group) and output k = 1..K, LRBP scores

    s_k(X) = mean_n ( ||U_k+^T x_n||^2 - ||U_k-^T x_n||^2 ) + b_k,     U_k+-  in R^{D x r/2}

which equals tr(W_k * X X^T / N) + b_k with the symmetric, indefinite W_k = U_k+ U_k+^T - U_k- U_k-^T
of rank <= r. The bilinear matrix X X^T is never formed: one matrix product D -> K*r, a square, a mean
over the items and a signed sum over the rank axis. The mean over the items is how RCGS writes it
(eq. 4-5 divide by their number; Kong & Fowlkes' original sums): the score does not depend on the number
of items, and it is a symmetric function of them, invariant to their order and to duplicating all of them.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class LowRankBilinearPooling(nn.Module):
    """LRBP over the items of ``x`` (``[B, N, D]`` -> ``[B, K]``).

    ``weight`` has shape ``[K, r, D]``: for output k the first ``r/2`` rows are U_k+ and the last
    ``r/2`` are U_k-. ``bias`` has shape ``[K]``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        if rank < 2 or rank % 2:
            raise ValueError(f"LRBP rank must be an even number >= 2, got {rank}")
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.weight = nn.Parameter(torch.empty(out_features, rank, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform U (fans D and K*r, as a D -> K*r linear map), zero bias."""
        bound = math.sqrt(6.0 / (self.in_features + self.out_features * self.rank))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``x`` of shape ``[B, N, D]`` (N items of dimension D); returns ``[B, K]``."""
        projected = F.linear(x, self.weight.flatten(0, 1))  # [B, N, K*r]
        # squares, mean and signed sum in float32 even under bf16 autocast (they cancel)
        energy = (
            projected.to(torch.promote_types(projected.dtype, torch.float32))
            .square()
            .mean(dim=1)
            .view(x.shape[0], self.out_features, self.rank)
        )
        half = self.rank // 2
        return energy[..., :half].sum(-1) - energy[..., half:].sum(-1) + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def signed_sqrt(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """sign(x) * (sqrt(|x| + eps) - sqrt(eps)): continuous at 0 with a bounded gradient."""
    return torch.sign(x) * (torch.sqrt(x.abs() + eps) - math.sqrt(eps))
