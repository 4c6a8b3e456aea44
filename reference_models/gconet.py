"""GCoNet (Fan et al., CVPR 2021): group collaborative learning for co-salient object detection.

A faithful port of the official ``GINet`` (``fanq15/GCoNet``, ``models/GCoNet.py``); module and parameter
names follow the release, so its ``final_gconet.pth`` loads with ``strict=True`` once the unused VGG FC
layers (``backbone.classifier.*``) are dropped (``adapt_state_dict``). Shapes for a 224 x 224 input:

* VGG16 blocks x1..x5 (64@224 .. 512@14); only conv5_3 of the backbone trains.
* GAM (``co_x5.all_attention``): affinity between every pair of the group's N*h*w conv5 positions, max
  over each image's positions, mean over the images, softmax over each image's positions -> attention;
  consensus = mean over the group of conv6(x5 * attention), a 512-vector; output x5 * consensus.
* GCM (training): the batch is [group 1; group 2]; positives x5_i * E_i go to the decoder, negatives
  x5_1 * E_2 and x5_2 * E_1 join them in ``pred_layer`` whose logits must give the GT / all background.
* ACM (training): ``classifier`` on the global average of the raw x5 predicts the group index.
* FPN decoder, 64 channels, four deep-supervised sides; the final map is the last one.
* Loss: IoU (summed over images and sides) x1 + cross-entropy x3 + binary focal x250.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reference_models.backbones import VGGBlocks, vgg_blocks
from reference_models.data import group_pairs

if TYPE_CHECKING:
    from reference_models.data import GroupDataset

DEFAULT_RECIPE = "gconet.yaml"
CHANNELS = 512  # conv5 channels
UNUSED_OFFICIAL_PREFIXES = ("backbone.classifier.",)  # VGG FC layers stored in the official checkpoint


def msra_fill(layer: nn.Module) -> None:
    """detectron2's ``c2_msra_fill``: Kaiming-normal weights (fan_out, relu gain), zero bias."""
    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(layer.bias)


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True``, as everywhere in GCoNet."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class LatLayer(nn.Module):
    """Lateral connection: conv3x3 c->64, ReLU, conv3x3 64->64."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.convlayer = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(64, 64, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convlayer(x)


class EnLayer(nn.Module):
    """Top-down refinement: conv3x3 64->64, ReLU, conv3x3 64->64 (no final ReLU)."""

    def __init__(self, in_channels: int = 64) -> None:
        super().__init__()
        self.enlayer = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(64, 64, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enlayer(x)


class DSLayer(nn.Module):
    """Deep-supervision side output: two conv3x3+ReLU, conv1x1 -> 1, sigmoid (probabilities)."""

    def __init__(self, in_channels: int = 64) -> None:
        super().__init__()
        self.enlayer = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.predlayer = nn.Sequential(nn.Conv2d(64, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predlayer(self.enlayer(x))


def add_decoder_layers(module: nn.Module) -> None:
    """Register the FPN decoder that GICD's GINet and GCoNet share, in their releases' order: ``toplayer``
    (1x1 convs 512->64->64), ``latlayer4..1`` (from 512, 256, 128, 64 channels), ``enlayer4..1``, ``dslayer4..1``."""
    module.toplayer = nn.Sequential(nn.Conv2d(CHANNELS, 64, 1), nn.ReLU(inplace=True), nn.Conv2d(64, 64, 1))
    for level, channels in zip((4, 3, 2, 1), (512, 256, 128, 64), strict=True):
        module.add_module(f"latlayer{level}", LatLayer(channels))
    for kind in (EnLayer, DSLayer):
        for level in (4, 3, 2, 1):
            module.add_module(f"{kind.__name__.lower()}{level}", kind())


def decoder_levels(module: nn.Module, features: tuple[torch.Tensor, ...]) -> tuple[tuple, ...]:
    """(lateral feature, latlayer, enlayer, dslayer) of levels 4..1, top-down, of a module with those layers."""
    return tuple(
        (
            features[level - 1],
            *(getattr(module, f"{kind}{level}") for kind in ("latlayer", "enlayer", "dslayer")),
        )
        for level in (4, 3, 2, 1)
    )


class HalfDSLayer(nn.Module):
    """GCM head (official ``half_DSLayer``): conv3x3 c->c/4, ReLU, conv1x1 -> 1 logits (no sigmoid)."""

    def __init__(self, in_channels: int = CHANNELS) -> None:
        super().__init__()
        self.enlayer = nn.Sequential(
            nn.Conv2d(in_channels, in_channels // 4, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.predlayer = nn.Sequential(nn.Conv2d(in_channels // 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predlayer(self.enlayer(x))


class GroupAttention(nn.Module):
    """GAM (official ``AllAttLayer``) over one group of conv5 features ``[N, C, h, w]``."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.query_transform = nn.Conv2d(channels, channels, 1)
        self.key_transform = nn.Conv2d(channels, channels, 1)
        self.scale = 1.0 / channels**0.5
        self.conv6 = nn.Conv2d(channels, channels, 1)
        for layer in (self.query_transform, self.key_transform, self.conv6):
            msra_fill(layer)

    def attention(self, x5: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """Per-image spatial attention ``[N, 1, h, w]`` (each image's map sums to 1).

        logit(i, p) = mean_j max_q <Q(i, p), K(j, q)> / sqrt(C), softmax over p. ``block`` images at a
        time bound the affinity matrix to (block*h*w)^2 entries; the result does not depend on it.
        """
        n, c, h, w = x5.shape
        positions = h * w
        query = self.query_transform(x5).flatten(2).transpose(1, 2).reshape(n * positions, c)
        key = self.key_transform(x5).flatten(2).transpose(0, 1).reshape(c, n * positions)
        step = n if not block else int(block)
        rows = []
        for i in range(0, n, step):
            q = query[i * positions : (i + step) * positions]
            best = [
                (q @ key[:, j * positions : (j + step) * positions]).view(q.shape[0], -1, positions).amax(-1)
                for j in range(0, n, step)
            ]
            rows.append(
                torch.cat(best, dim=1).mean(-1)
            )  # mean over all N images of each position's best match
        logits = torch.cat(rows).view(n, positions) * self.scale
        return F.softmax(logits, dim=-1).view(n, 1, h, w)

    def forward(self, x5: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """conv6(x5 * attention): the attended features whose mean is the group consensus."""
        return self.conv6(x5 * self.attention(x5, block))


class CoAttLayer(nn.Module):
    """GAM + GCM on conv5 (official ``CoAttLayer``).

    ``conv_output``, ``conv_transform`` and ``fc_transform`` are never used by the official forward pass;
    they are kept (and initialised the same way) so the released checkpoint loads strictly.
    """

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.all_attention = GroupAttention(channels)
        self.conv_output = nn.Conv2d(channels, channels, 1)
        self.conv_transform = nn.Conv2d(channels, channels, 1)
        self.fc_transform = nn.Linear(channels, channels)
        for layer in (self.conv_output, self.conv_transform, self.fc_transform):
            msra_fill(layer)

    def consensus(self, x5: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """The group consensus ``[1, C, 1, 1]``: mean over images and positions of the attended features."""
        return self.all_attention(x5, block).mean(dim=(0, 2, 3), keepdim=True)

    def forward(self, x5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(x5 weighted by its own group's consensus, negatives) -- negatives only in training.

        Training expects the batch [group 1; group 2] with equal halves; eval treats it as one group.
        """
        if not self.training:
            return x5 * self.consensus(x5), None
        if x5.shape[0] % 2:
            raise ValueError(f"GCoNet training needs two equal groups, got a batch of {x5.shape[0]}")
        first, second = x5.chunk(2)
        e1, e2 = self.consensus(first), self.consensus(second)
        positive = torch.cat([first * e1, second * e2])
        negative = torch.cat([first * e2, second * e1])
        return positive, negative


class GCoNet(nn.Module):
    """The network (official ``GINet``). ``forward`` returns the side maps ``[cam, p4, p3, p2, p1]`` in eval
    mode, and ``(maps, class_logits, gcm_logits)`` in training mode."""

    def __init__(self, num_classes: int = 291, backbone: VGGBlocks | None = None) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else VGGBlocks("vgg16")
        add_decoder_layers(self)
        self.pred_layer = HalfDSLayer(CHANNELS)
        self.co_x5 = CoAttLayer(CHANNELS)
        self.classifier = nn.Linear(CHANNELS, num_classes)
        msra_fill(self.classifier)

    def decode(self, features: tuple[torch.Tensor, ...], weighted: torch.Tensor) -> list[torch.Tensor]:
        """Side maps [cam, p4, p3, p2, p1] at the input size from x1..x4 and the weighted x5."""
        x1, x2, x3, x4, _ = features
        size = x1.shape[-2:]
        maps = [upsample(torch.sigmoid(weighted.mean(dim=1, keepdim=True)), size)]
        p = self.toplayer(weighted)
        for lateral, latlayer, enlayer, dslayer in decoder_levels(self, features):
            p = enlayer(upsample(p, lateral.shape[-2:]) + latlayer(lateral))
            maps.append(upsample(dslayer(p), size))
        return maps

    def forward(self, images: torch.Tensor):  # noqa: ANN201 -- tuple in training, list in eval
        features = self.backbone(images)
        x5 = features[4]
        weighted, negative = self.co_x5(x5)
        maps = self.decode(features, weighted)
        if not self.training:
            return maps
        class_logits = self.classifier(x5.mean(dim=(2, 3)))
        gcm_logits = upsample(self.pred_layer(torch.cat([weighted, negative])), images.shape[-2:])
        return maps, class_logits, gcm_logits


# --- losses -------------------------------------------------------------------------------------------


def iou_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Sum over images of 1 - |pred * gt| / (|gt| + |pred| - |pred * gt|) (GCoNet's ``IoU_loss``, no mean)."""
    inter = (pred * gt).sum(dim=(1, 2, 3))
    union = gt.sum(dim=(1, 2, 3)) + pred.sum(dim=(1, 2, 3)) - inter
    return (1.0 - inter / union).sum()


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """pytorch_toolbelt 0.4 ``BinaryFocalLoss()``: mean of (1 - p_t)^gamma * BCE-with-logits, no alpha."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return ((1.0 - torch.exp(-bce)).pow(gamma) * bce).mean()


def training_loss(model: nn.Module, batch: dict[str, torch.Tensor], cfg: dict) -> dict[str, torch.Tensor]:
    """Total = w_iou * sum of the 4 side IoU losses + w_cls * CE + w_focal * focal (GCM); parts logged."""
    maps, class_logits, gcm_logits = model(batch["images"])
    masks = batch["masks"]
    weights = {"iou": 1.0, "cls": 3.0, "focal": 250.0, **(cfg.get("loss_weights") or {})}
    parts = {
        "iou": sum(iou_loss(side.float(), masks) for side in maps[1:]),
        "cls": F.cross_entropy(class_logits.float(), batch["labels"]),
        "focal": binary_focal_loss(gcm_logits.float(), torch.cat([masks, torch.zeros_like(masks)])),
    }
    total = sum(float(weights[name]) * value for name, value in parts.items())
    return {"loss": total, **parts}


# --- model interface ----------------------------------------------------------------------------------


def prepare_config(cfg: dict, dataset: GroupDataset) -> dict:
    """Fix ``num_classes: auto`` to the number of training groups; check the classifier is big enough."""
    groups = len(dataset.groups)
    num_classes = cfg.get("num_classes")
    if num_classes in (None, "auto"):
        return {**cfg, "num_classes": groups}
    if groups > int(num_classes):
        raise ValueError(
            f"the training set has {groups} groups but the recipe's num_classes is {num_classes}"
        )
    return cfg


def build_model(cfg: dict) -> GCoNet:
    """GCoNet with VGG16 (ImageNet weights unless ``pretrained: false``); only ``trainable_backbone`` trains."""
    model = GCoNet(int(cfg.get("num_classes") or 291), vgg_blocks("vgg16", cfg))
    trainable = tuple(cfg.get("trainable_backbone", ["conv5.conv5_3"]) or ())
    for name, parameter in model.backbone.named_parameters():
        parameter.requires_grad_(name.startswith(trainable))
    return model


def plan_batches(
    dataset: GroupDataset, cfg: dict, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch: one batch per group (in random order) with a random partner group, N images of each.

    Yields (pair indices into ``dataset.pairs()`` ``[2N]``, labels ``[2N]`` = sorted-group index).
    """
    sizes = [len(dataset.items[group]) for group in dataset.groups]
    for pair in group_pairs(sizes, rng, int(cfg["group_size"])):
        rows = np.concatenate(
            [dataset.rows(pair.first, pair.first_images), dataset.rows(pair.second, pair.second_images)]
        )
        yield rows, np.repeat(np.array([pair.first, pair.second], np.int64), len(pair.first_images))


@torch.no_grad()
def predict_group(model: GCoNet, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Final maps ``[N, 1, H, W]`` in (0, 1) of one whole group (the GAM consensus uses all N images)."""
    return model(images)[-1]


def _parts(images: torch.Tensor, cfg: dict) -> tuple[torch.Tensor, ...]:
    chunk = int(cfg.get("predict_chunk") or 0)
    return images.split(chunk) if chunk > 0 else (images,)


@torch.no_grad()
def group_context(model: GCoNet, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """The GAM consensus ``[1, 512, 1, 1]`` of the whole group, running the backbone ``predict_chunk`` images
    at a time and the affinity in blocks of the same size (same value as one pass over the group)."""
    x5 = torch.cat([model.backbone(part)[4] for part in _parts(images, cfg)])
    return model.co_x5.consensus(x5, int(cfg.get("predict_chunk") or 0) or None)


@torch.no_grad()
def decode(model: GCoNet, images: torch.Tensor, context: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Final maps ``[n, 1, H, W]`` of some images of a group given the group's consensus."""
    maps = []
    for part in _parts(images, cfg):
        features = model.backbone(part)
        maps.append(model.decode(features, features[4] * context)[-1])
    return torch.cat(maps)


def adapt_state_dict(state: dict) -> dict:
    """Accept the official ``final_gconet.pth`` / ``checkpoint.pth``: unwrap, strip ``ginet.``, drop the VGG FCs."""
    state = state.get("state_dict", state)
    state = {key.removeprefix("module.").removeprefix("ginet."): value for key, value in state.items()}
    return {key: value for key, value in state.items() if not key.startswith(UNUSED_OFFICIAL_PREFIXES)}
