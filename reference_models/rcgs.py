"""RCGS (Wang et al., AAAI 2019): co-saliency with a group semantic vector learnt by co-category supervision.

Architecture (shapes for a 224 x 224 input; ``docs/rcgs.md`` lists every choice the paper leaves open):

* VGG19 backbone: pool3 (256 @ 28^2), pool4 (512 @ 14^2), pool5 (512 @ 7^2).
* Co-category branch, ``group_pooling``, giving the group semantic vector v in R^D (D = ``group_dim``):
  - ``hlrbp`` (the paper's H-LRBP, eq. 4-5): per image, pool5 -> 1x1 conv to ``reduce_channels`` (no
    bias) -> LRBP over the 49 locations -> signed sqrt -> L2 -> z_i in R^{embed_dim}; per group, LRBP over
    the images' z_i -> v. Both LRBP levels average over their items (the 1/K of eq. 4-5).
  - ``ap`` (the ablation of Fig. 2b): per image, global average pooling -> FC -> ReLU -> z_i; per group,
    the mean of the z_i -> FC -> v.
  Both end in a mean over the group's images, so v is invariant to their order and to duplicating them.
* Co-category classifier (eq. 7): logits s = W^T v with W in R^{D x L} over the L co-categories.
* Co-saliency branch: v itself is broadcast to every location of the maps and concatenated with them,
  reduced by 1x1 conv + ReLU to ``fusion_channels``:
  - ``fusion: multi`` (the full model): G3, G4, G5; top-down P5 = G5,
    P_l = ReLU(conv3x3(deconv_x2(P_{l+1}) + G_l)); head conv3x3 + ReLU, 1x1 score, deconv x8;
  - ``fusion: single-g5`` (the single-scale model of Table 2): G5 only; head conv3x3 + ReLU, 1x1 score,
    deconv x32.
  Every deconvolution starts as bilinear interpolation.
* Loss (eq. 8-10): pixel BCE + ``category_weight`` * multi-label BCE of s against the sub-group's
  co-categories.

The module interface used by the shared trainer and predictor: ``DEFAULT_RECIPE``, ``prepare_config``,
``build_model``, ``plan_batches``, ``training_loss``, ``predict_group``, plus ``group_context`` and
``decode`` for groups too large for one forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cosalbench.errors import CosalbenchError
from reference_models.backbones import vgg19_features
from reference_models.lrbp import LowRankBilinearPooling, signed_sqrt
from reference_models.subgroups import (
    batched,
    category_vocabulary,
    co_category_labels,
    epoch_subgroups,
    item_categories,
)

if TYPE_CHECKING:
    from reference_models.data import GroupDataset

DEFAULT_RECIPE = "rcgs.yaml"
GROUP_POOLINGS = ("hlrbp", "ap")
FUSIONS = ("multi", "single-g5")
# Indices of pool3, pool4 and pool5 in torchvision's ``vgg19().features``.
POOL_INDICES = (18, 27, 36)
POOL_CHANNELS = (256, 512, 512)
STRIDE = 32


class Features(NamedTuple):
    """pool3, pool4 and pool5 maps of a batch."""

    pool3: torch.Tensor
    pool4: torch.Tensor
    pool5: torch.Tensor


class RCGSOutput(NamedTuple):
    """Raw outputs: per-image saliency logits ``[N, 1, H, W]``, per-group co-category logits ``[G, L]``
    and the group semantic vectors ``[G, D]`` they come from."""

    saliency: torch.Tensor
    categories: torch.Tensor
    vectors: torch.Tensor


class HierarchicalLRBP(nn.Module):
    """H-LRBP: LRBP over the locations of each image (eq. 4), then LRBP over the images of a group (eq. 5)."""

    def __init__(self, reduce_channels: int, embed_dim: int, group_dim: int, rank: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(POOL_CHANNELS[2], reduce_channels, 1, bias=False)
        self.image_lrbp = LowRankBilinearPooling(reduce_channels, embed_dim, rank)
        self.group_lrbp = LowRankBilinearPooling(embed_dim, group_dim, rank)
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="linear")

    def embed(self, pool5: torch.Tensor) -> torch.Tensor:
        """Per-image descriptors ``[N, embed_dim]`` (signed sqrt, unit L2 norm) from pool5 ``[N, C, h, w]``."""
        locations = self.reduce(pool5).flatten(2).transpose(1, 2)  # [N, h*w, m]
        return F.normalize(signed_sqrt(self.image_lrbp(locations)), dim=1)

    def group_vector(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Group semantic vectors ``[G, group_dim]`` from the descriptors of G groups ``[G, n, embed_dim]``."""
        return self.group_lrbp(embeddings)


class AveragePooling(nn.Module):
    """The ablation of Fig. 2b: FC on globally averaged pool5, averaged over the group, FC to the vector."""

    def __init__(self, embed_dim: int, group_dim: int) -> None:
        super().__init__()
        self.image_fc = nn.Linear(POOL_CHANNELS[2], embed_dim)
        self.group_fc = nn.Linear(embed_dim, group_dim)

    def embed(self, pool5: torch.Tensor) -> torch.Tensor:
        """Per-image descriptors ``[N, embed_dim]``."""
        return F.relu(self.image_fc(pool5.mean(dim=(2, 3))))

    def group_vector(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Group semantic vectors ``[G, group_dim]`` from ``[G, n, embed_dim]``."""
        return self.group_fc(embeddings.mean(dim=1))


def bilinear_kernel(size: int) -> torch.Tensor:
    """The ``size`` x ``size`` bilinear-interpolation filter of FCN: a deconvolution with stride f, kernel
    2f and padding f/2 initialised with it upsamples by f exactly as bilinear interpolation does."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float64) - center).abs() / factor
    return (ramp[:, None] * ramp[None, :]).float()


def bilinear_deconvolution(channels: int, factor: int, bias: bool = True) -> nn.ConvTranspose2d:
    """A ``channels`` -> ``channels`` x``factor`` deconvolution starting as per-channel bilinear upsampling."""
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=bias)
    with torch.no_grad():
        layer.weight.zero_()
        kernel = bilinear_kernel(2 * factor)
        for channel in range(channels):
            layer.weight[channel, channel] = kernel
        if bias:
            layer.bias.zero_()
    return layer


class Decoder(nn.Module):
    """Broadcast the group vector, reduce the levels by 1x1 conv + ReLU, fuse top-down (``multi``) or use
    G5 alone (``single-g5``), score with conv3x3 + ReLU + 1x1, upsample to the input by deconvolution."""

    def __init__(self, vector_dim: int, channels: int, fusion: str) -> None:
        super().__init__()
        self.multi = fusion == "multi"
        if self.multi:
            self.lateral3 = nn.Conv2d(POOL_CHANNELS[0] + vector_dim, channels, 1)
            self.lateral4 = nn.Conv2d(POOL_CHANNELS[1] + vector_dim, channels, 1)
        self.lateral5 = nn.Conv2d(POOL_CHANNELS[2] + vector_dim, channels, 1)
        if self.multi:
            self.up4 = bilinear_deconvolution(channels, 2)
            self.smooth4 = nn.Conv2d(channels, channels, 3, padding=1)
            self.up3 = bilinear_deconvolution(channels, 2)
            self.smooth3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Conv2d(channels, channels, 3, padding=1)
        self.score = nn.Conv2d(channels, 1, 1)
        self.out = bilinear_deconvolution(1, 8 if self.multi else STRIDE, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    @staticmethod
    def _broadcast(feature: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        tiled = vector[:, :, None, None].expand(-1, -1, *feature.shape[2:])
        return torch.cat([feature, tiled], dim=1)

    def forward(self, features: Features, vector: torch.Tensor) -> torch.Tensor:
        """Saliency logits ``[N, 1, H, W]`` from the maps and each image's group vector ``[N, D]``."""
        p = F.relu(self.lateral5(self._broadcast(features.pool5, vector)))
        if self.multi:
            g4 = F.relu(self.lateral4(self._broadcast(features.pool4, vector)))
            g3 = F.relu(self.lateral3(self._broadcast(features.pool3, vector)))
            p = F.relu(self.smooth4(self.up4(p) + g4))
            p = F.relu(self.smooth3(self.up3(p) + g3))
        return self.out(self.score(F.relu(self.head(p))))


class RCGS(nn.Module):
    """The full network; ``features`` is a VGG19 ``features`` stack with torchvision indices."""

    def __init__(
        self,
        features: nn.Sequential,
        num_categories: int,
        group_pooling: str = "hlrbp",
        fusion: str = "multi",
        reduce_channels: int = 256,
        embed_dim: int = 512,
        group_dim: int = 512,
        rank: int = 8,
        fusion_channels: int = 256,
    ) -> None:
        super().__init__()
        if group_pooling not in GROUP_POOLINGS:
            raise ValueError(f"group_pooling must be one of {GROUP_POOLINGS}, got {group_pooling!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if num_categories < 1:
            raise ValueError("RCGS needs at least one co-category")
        self.features = features
        if group_pooling == "hlrbp":
            self.pooling: nn.Module = HierarchicalLRBP(reduce_channels, embed_dim, group_dim, rank)
        else:
            self.pooling = AveragePooling(embed_dim, group_dim)
        self.classifier = nn.Linear(group_dim, num_categories, bias=False)  # eq. 7: s = W^T v
        self.decoder = Decoder(group_dim, fusion_channels, fusion)

    def encode(self, images: torch.Tensor) -> Features:
        """pool3, pool4 and pool5 of ``images`` ``[N, 3, H, W]`` (H and W multiples of 32)."""
        height, width = images.shape[-2:]
        if height % STRIDE or width % STRIDE:
            raise ValueError(f"RCGS needs image sides that are multiples of {STRIDE}, got {height}x{width}")
        maps = []
        x = images
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in POOL_INDICES:
                maps.append(x)
        return Features(*maps)

    def embed(self, images: torch.Tensor) -> tuple[Features, torch.Tensor]:
        """The maps and the per-image descriptors ``[N, D1]`` feeding the group pooling."""
        features = self.encode(images)
        return features, self.pooling.embed(features.pool5)

    def forward(self, images: torch.Tensor, group_size: int) -> RCGSOutput:
        """Logits for ``images`` ``[G*group_size, 3, H, W]``, consecutive runs of ``group_size`` per group."""
        if group_size < 1 or images.shape[0] % group_size:
            raise ValueError(f"{images.shape[0]} images do not split into groups of {group_size}")
        features, embeddings = self.embed(images)
        vectors = self.pooling.group_vector(embeddings.view(-1, group_size, embeddings.shape[1]))
        saliency = self.decoder(features, vectors.repeat_interleave(group_size, dim=0))
        return RCGSOutput(saliency, self.classifier(vectors), vectors)


def check_recipe(cfg: dict) -> None:
    """Raise CosalbenchError for recipe values RCGS cannot use (ablation switches, image size)."""
    for key, allowed in (("group_pooling", GROUP_POOLINGS), ("fusion", FUSIONS)):
        if cfg.get(key, allowed[0]) not in allowed:
            raise CosalbenchError(
                None, f"recipe key {key}: unknown value {cfg[key]!r}", f"use {' or '.join(allowed)}"
            )
    size = cfg.get("size")
    if size is not None and int(size) % STRIDE:
        raise CosalbenchError(None, f"recipe key size: {size} is not a multiple of {STRIDE}", "use e.g. 224")


def prepare_config(cfg: dict, dataset: GroupDataset) -> dict:
    """The recipe with ``categories`` fixed from the training set when it is not set already."""
    check_recipe(cfg)
    if cfg.get("categories"):
        return cfg
    items = (item for group in dataset.groups for item in dataset.items[group])
    return {**cfg, "categories": category_vocabulary(items)}


def build_model(cfg: dict) -> RCGS:
    """The network described by the recipe; ``cfg["categories"]`` (the vocabulary) sets K.

    The VGG19 backbone gets ImageNet weights unless ``pretrained: false`` (``backbone_weights`` or the
    torch hub cache, see ``reference_models.backbones``).
    """
    check_recipe(cfg)
    categories = cfg.get("categories") or []
    if not categories:
        raise CosalbenchError(
            None, "the RCGS recipe has no 'categories'", "prepare_config fills them from the training set"
        )
    return RCGS(
        vgg19_features(cfg),
        num_categories=len(categories),
        group_pooling=cfg.get("group_pooling", "hlrbp"),
        fusion=cfg.get("fusion", "multi"),
        reduce_channels=int(cfg.get("reduce_channels", 256)),
        embed_dim=int(cfg.get("embed_dim", 512)),
        group_dim=int(cfg.get("group_dim", 512)),
        rank=int(cfg.get("lrbp_rank", 8)),
        fusion_channels=int(cfg.get("fusion_channels", 256)),
    )


def plan_batches(
    dataset: GroupDataset, cfg: dict, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of batches: ``subgroups_per_batch`` sub-groups of ``subgroup_size`` images of one group.

    Yields (pair indices into ``dataset.pairs()`` ``[B]``, co-category labels ``[B / subgroup_size, K]``
    over ``cfg["categories"]``).
    """
    vocabulary: Sequence[str] = cfg["categories"]
    size = int(cfg["subgroup_size"])
    sizes = {group: len(dataset.items[group]) for group in dataset.groups}
    position = {group: index for index, group in enumerate(dataset.groups)}
    for batch in batched(epoch_subgroups(sizes, size, rng), int(cfg["subgroups_per_batch"])):
        rows, labels = [], []
        for group, indices in batch:
            items = dataset.items[group]
            rows.append(dataset.rows(position[group], indices))
            labels.append(
                co_category_labels([item_categories(items[i]) for i in indices.tolist()], vocabulary)
            )
        yield np.concatenate(rows), np.stack(labels)


def training_loss(model: RCGS, batch: dict[str, torch.Tensor], cfg: dict) -> dict[str, torch.Tensor]:
    """``loss`` = pixel BCE + ``category_weight`` * multi-label co-category BCE (both means)."""
    output = model(batch["images"], int(cfg.get("subgroup_size", 5)))
    saliency = F.binary_cross_entropy_with_logits(output.saliency, batch["masks"])
    category = F.binary_cross_entropy_with_logits(output.categories, batch["labels"])
    total = saliency + float(cfg.get("category_weight", 1.0)) * category
    return {"loss": total, "saliency": saliency, "category": category}


def _chunks(images: torch.Tensor, cfg: dict) -> tuple[torch.Tensor, ...]:
    chunk = int(cfg.get("predict_chunk") or 0)
    return images.split(chunk) if chunk > 0 else (images,)


@torch.no_grad()
def group_context(model: RCGS, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """The group semantic vector ``[D]`` of a whole group (what the decoder receives).

    The backbone runs over chunks of ``predict_chunk`` images; the group pooling then sees all of them.
    """
    embeddings = torch.cat([model.embed(part)[1] for part in _chunks(images, cfg)])
    return model.pooling.group_vector(embeddings[None])[0]


@torch.no_grad()
def decode(model: RCGS, images: torch.Tensor, context: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Saliency maps ``[n, 1, H, W]`` in [0, 1] of some images of a group, given its ``group_context``."""
    maps = []
    for part in _chunks(images, cfg):
        vector = context[None].expand(part.shape[0], -1)
        maps.append(torch.sigmoid(model.decoder(model.encode(part), vector)))
    return torch.cat(maps)


@torch.no_grad()
def predict_group(model: RCGS, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Saliency maps ``[N, 1, H, W]`` in [0, 1] for a whole group, its vector computed over all N images."""
    if len(_chunks(images, cfg)) > 1:
        return decode(model, images, group_context(model, images, cfg), cfg)
    output = model(images, images.shape[0])
    return torch.sigmoid(output.saliency)
