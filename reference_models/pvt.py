"""PVTv2-B2 (Wang et al., "PVT v2: Improved baselines with Pyramid Vision Transformer", CVMJ 2022) in plain torch.

The encoder of MCCL, written from the copy in ``ZhengPeng7/MCCL@40ad44c`` (``models/pvt.py``, itself the
PVT authors' ``PyramidVisionTransformerImpr``) without its ``timm`` imports. Parameter names follow that
file, so MCCL's released checkpoint (keys ``bb.*``) and the PVT authors' ImageNet ``pvt_v2_b2.pth`` (same
names plus a ``head.*`` classifier) load into it.

Four stages; stage i embeds its input with an overlapping strided convolution (7x7 stride 4, then 3x3
stride 2), runs ``depths[i]`` transformer blocks on the tokens and returns the layer-normed map:
64@H/4, 128@H/8, 320@H/16, 512@H/32 for B2. A block is pre-norm attention + pre-norm MLP, each with a
residual (and stochastic depth in training). The attention is "spatial-reduction" attention: keys and
values come from the map downsampled by a ``sr_ratio`` x ``sr_ratio`` strided conv (8, 4, 2, 1), then
layer-normed. The MLP is fc1 -> 3x3 depth-wise conv on the token map -> GELU -> fc2.

Details kept from the release because they change outputs: the blocks' and stages' LayerNorms use
eps = 1e-6, the patch embeddings' and the spatial reductions' the torch default 1e-5; GELU is the exact
(erf) one; stochastic depth grows linearly from 0 to 0.1 over the 16 blocks; attention is computed as
``softmax(q k^T * d^-1/2) v`` (no fused kernel), so float64 outputs agree with the release to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

BLOCK_EPS = 1e-6  # partial(nn.LayerNorm, eps=1e-6) of pvt_v2_b2: block norms and stage norms


class StochasticDepth(nn.Module):
    """Drop the whole residual branch of a sample with probability ``p`` in training (scaled by 1/(1-p))."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


def tokens_to_map(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Tokens ``[B, H*W, C]`` -> feature map ``[B, C, H, W]``."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)


class DWConv(nn.Module):
    """3x3 depth-wise convolution applied to tokens viewed as their feature map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.dwconv(tokens_to_map(x, height, width)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """fc1 (dim -> hidden) -> depth-wise conv -> GELU -> fc2 (hidden -> dim); dropout 0 in the release."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), height, width)))


class Attention(nn.Module):
    """Multi-head attention whose keys/values come from the map reduced ``sr_ratio`` times per side."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)  # default eps (1e-5), as in the release

    def _heads(self, x: torch.Tensor, parts: int) -> torch.Tensor:
        """``[B, n, parts*C]`` -> ``[parts, B, heads, n, C/heads]``."""
        batch, tokens, width = x.shape
        per_head = width // parts // self.num_heads
        return x.reshape(batch, tokens, parts, self.num_heads, per_head).permute(2, 0, 3, 1, 4)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, tokens, channels = x.shape
        query = self._heads(self.q(x), 1)[0]
        source = x
        if self.sr_ratio > 1:
            reduced = self.sr(tokens_to_map(x, height, width))
            source = self.norm(reduced.reshape(batch, channels, -1).transpose(1, 2))
        key, value = self._heads(self.kv(source), 2)
        weights = ((query @ key.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((weights @ value).transpose(1, 2).reshape(batch, tokens, channels))


class Block(nn.Module):
    """x + attn(norm1(x)); x + mlp(norm2(x)) -- each branch under stochastic depth."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, sr_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.attn = Attention(dim, num_heads, sr_ratio)
        self.drop_path = StochasticDepth(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x), height, width))


class OverlapPatchEmbed(nn.Module):
    """Strided conv with a ``kernel // 2`` padding (overlapping patches), then LayerNorm over the tokens."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)  # default eps (1e-5), as in the release

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), height, width


def init_weights(module: nn.Module) -> None:
    """The release's initialisation: Linear ~ trunc N(0, 0.02), LayerNorm 1/0, Conv ~ N(0, 2/fan_out)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        nn.init.zeros_(module.bias)


class PyramidVisionTransformerV2(nn.Module):
    """The four-stage PVTv2 encoder; ``forward`` returns the four stage maps (strides 4, 8, 16, 32)."""

    def __init__(
        self,
        embed_dims: Sequence[int] = (64, 128, 320, 512),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        mlp_ratios: Sequence[int] = (8, 8, 4, 4),
        depths: Sequence[int] = (3, 4, 6, 3),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        drop_path_rate: float = 0.1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.depths = tuple(depths)
        # the release's registration (= state-dict) order: patch_embed1..4, then block1, norm1, block2, ...
        for stage, dim in enumerate(embed_dims, start=1):
            previous = in_channels if stage == 1 else embed_dims[stage - 2]
            kernel, stride = (7, 4) if stage == 1 else (3, 2)
            setattr(self, f"patch_embed{stage}", OverlapPatchEmbed(previous, dim, kernel, stride))
        rates = iter(torch.linspace(0, drop_path_rate, sum(depths)).tolist())
        for stage, (dim, heads, ratio, depth, sr) in enumerate(
            zip(embed_dims, num_heads, mlp_ratios, depths, sr_ratios, strict=True), start=1
        ):
            blocks = [Block(dim, heads, ratio, sr, next(rates)) for _ in range(depth)]
            setattr(self, f"block{stage}", nn.ModuleList(blocks))
            setattr(self, f"norm{stage}", nn.LayerNorm(dim, eps=BLOCK_EPS))
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in range(1, len(self.depths) + 1):
            tokens, height, width = getattr(self, f"patch_embed{stage}")(x)
            for block in getattr(self, f"block{stage}"):
                tokens = block(tokens, height, width)
            tokens = getattr(self, f"norm{stage}")(tokens)
            x = tokens.reshape(tokens.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous()
            maps.append(x)
        return maps


def pvt_v2_b2(drop_path_rate: float = 0.1) -> PyramidVisionTransformerV2:
    """PVTv2-B2: widths 64/128/320/512, heads 1/2/5/8, MLP ratios 8/8/4/4, depths 3/4/6/3 (25.4 M parameters)."""
    return PyramidVisionTransformerV2(drop_path_rate=drop_path_rate)
