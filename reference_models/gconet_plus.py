"""GCoNet+ (Zheng et al., TPAMI 2023): GCoNet with a confidence-enhancement head, recurrent auxiliary
classification and a group-based symmetric triplet loss.

A port of the official ``GCoNet_plus`` (``ZhengPeng7/GCoNet_plus`` at commit 6adfe2a, ``models/GCoNet_plus.py``,
``models/modules.py``, ``loss.py``, ``train.py``, ``dataset.py``, ``preproc.py``, ``test.py``) in the released
configuration of its ``config.py``: backbone ``vgg16bn``, relation module GAM, losses ``sal`` (BCE + IoU on the
last map), ``cls``, ``contrast`` (GCM) and ``cls_mask`` (RACM) plus the triplet loss on the pooled conv5
features, one output (no deep supervision), the DB head (``db_output_decoder``, k = 300) as the final layer,
no refiner, the whole backbone frozen. Module and parameter names follow the release, so its checkpoints
(``ultimate*.pth``, ``ep*.pth``, ``checkpoint.pth``) load with ``strict=True``.

Shapes for a 256 x 256 input: VGG16-BN stages x1..x5 (64@256 .. 512@16); GAM/GCM on x5 exactly as GCoNet
(``reference_models.gconet.CoAttLayer``, reused); decoder widths 256 -> 128 -> 64 -> 32 with ``ResBlk``
(conv3x3 -> 64, BN, ReLU, conv3x3, BN: no residual, no final ReLU) and 1x1 lateral convs; the DB head turns
two sigmoid maps P (binarize) and T (thresh) into 1 / (1 + exp(-k (P - T))), already a probability.

Training (``training_loss``): per batch [group 1; group 2] the release's loss
  120 BCE(map) + 2 IoU(map, summed over images) + 12 triplet(GAP x5) + 3 CE(cls) + 250 focal(GCM)
  + 10 CE(classifier(GAP(backbone(image * sigmoid(conv_out_mask(p1))))))
(the config's 30/0.5/3/2.5 times 4 because a single output is supervised). With a ``joint_train_set``
each step adds the losses of one DUTS_class batch and one COCO-SEG batch, then one backward, as its
``train.py`` does.

Deviations from the release (none changes an eval-mode output):

* Eval mode skips the classification and RACM branches, whose results the release computes and discards.
* ``group_context``/``decode`` (groups larger than ``--max-group-size``) decide the DB head's overflow
  fallback (below) over the whole group, as one pass would; the release has no chunked prediction.
* Only the released backbone (vgg16bn) is built; the release's ``vgg16`` option crashes in its DB head and
  ``resnet50`` was not released with weights.
* Training data: images are augmented after the 256 x 256 resize instead of before it (same operations:
  flip p=0.5, rotation p=0.2 by an integer angle in [-15, 15) with BICUBIC for image and mask, then colour
  enhancement); masks come from cosalbench's loader (NEAREST resize, binarised) before that rotation.
  The release resizes its rotated labels bilinearly, so its edges are soft.
* Group order is sorted folder names, not the authors' ``os.listdir`` order (the class indices differ).
* The release's quirk kept on purpose: the DB step function computes exp(-300 (P - T)) and, when any value of
  the whole batch overflows to inf, recomputes every map of the batch with k = 50 (``DBHead.step_function``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import nn
from torch.nn import functional as F

from reference_models.backbones import VGGStages, vgg_stages
from reference_models.data import IMAGENET_MEAN, IMAGENET_STD, GroupDataset, group_pairs
from reference_models.gconet import (
    CoAttLayer,
    HalfDSLayer,
    _parts,  # the same predict_chunk split
    binary_focal_loss,
    iou_loss,
    msra_fill,
    upsample,
)

if TYPE_CHECKING:
    from reference_models.data import GroupPair

DEFAULT_RECIPE = "gconet_plus.yaml"
CHANNELS = 512  # conv5 channels
DB_K = 300.0  # config.db_k
DB_FALLBACK_K = 50.0  # used by the release when exp(-k (P - T)) overflows anywhere in the batch
LOSS_WEIGHTS = {"bce": 120.0, "iou": 2.0, "triplet": 12.0, "cls": 3.0, "contrast": 250.0, "cls_mask": 10.0}


class ResBlk(nn.Module):
    """The decoder block: conv3x3 in->64, BN, ReLU, conv3x3 64->out, BN (no skip, no final ReLU)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, 64, 3, padding=1)
        self.relu_in = nn.ReLU(inplace=True)
        self.conv_out = nn.Conv2d(64, out_channels, 3, padding=1)
        self.bn_in = nn.BatchNorm2d(64)  # registered after the convs, as in the release (state-dict order)
        self.bn_out = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_out(self.conv_out(self.relu_in(self.bn_in(self.conv_in(x)))))


def _db_branch(channels: int) -> nn.Sequential:
    """(conv3x3, BN, ReLU) x 2, conv1x1 -> 1, sigmoid."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, 1, 1),
        nn.Sigmoid(),
    )


def db_step(shrink: torch.Tensor, threshold: torch.Tensor, fallback: bool | None = None) -> torch.Tensor:
    """1 / (1 + exp(-k (P - T))) with k = 300, or k = 50 for the whole batch if any exp overflows.

    ``fallback`` forces the choice (a chunked prediction decides it over the whole group).
    """
    a = torch.exp(-DB_K * (shrink - threshold))
    if fallback is None:
        fallback = bool(torch.isinf(a).any())
    if fallback:
        a = torch.exp(-DB_FALLBACK_K * (shrink - threshold))
    return torch.reciprocal(1 + a)


def db_overflows(shrink: torch.Tensor, threshold: torch.Tensor) -> bool:
    """Whether exp(-300 (P - T)) overflows anywhere (the condition of the release's k = 50 fallback)."""
    return bool(torch.isinf(torch.exp(-DB_K * (shrink - threshold))).any())


class DBHead(nn.Module):
    """Differentiable binarisation (CEM): a shrink map P and a threshold map T, combined by ``db_step``."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.binarize = _db_branch(channels)
        self.thresh = _db_branch(channels)

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, T), both in (0, 1)."""
        return self.binarize(x), self.thresh(x)

    def forward(self, x: torch.Tensor, fallback: bool | None = None) -> torch.Tensor:
        return db_step(*self.maps(x), fallback=fallback)


class TrainOutputs(NamedTuple):
    """What the training forward returns (the release's ``return_values``, named)."""

    maps: list[torch.Tensor]  # [final map], in (0, 1)
    class_logits: torch.Tensor  # classifier(GAP(x5))
    contrast_logits: torch.Tensor  # GCM head on [positives; negatives], at the input size
    masked_class_logits: torch.Tensor  # RACM: classifier(GAP(backbone(image * predicted mask)))
    pooled_x5: torch.Tensor  # GAP(x5) [2N, 512], the triplet loss's features


class GCoNetPlus(nn.Module):
    """The network (official ``GCoNet_plus``, released config). Eval mode returns ``[final map]``."""

    def __init__(self, num_classes: int = 291, backbone: VGGStages | None = None) -> None:
        super().__init__()
        self.bb = backbone if backbone is not None else VGGStages("vgg16_bn")
        self.top_layer = ResBlk(512, 256)
        self.enlayer5 = ResBlk(256, 256)
        self.latlayer5 = nn.Conv2d(512, 256, 1)
        self.enlayer4 = ResBlk(256, 128)
        self.latlayer4 = nn.Conv2d(256, 128, 1)
        self.enlayer3 = ResBlk(128, 64)
        self.latlayer3 = nn.Conv2d(128, 64, 1)
        self.enlayer2 = ResBlk(64, 32)
        self.latlayer2 = nn.Conv2d(64, 32, 1)
        self.enlayer1 = ResBlk(32, 32)
        self.conv_out1 = nn.Sequential(nn.Conv2d(32, 1, 1))  # in the checkpoint; unused with the DB head
        self.co_x5 = CoAttLayer(CHANNELS)
        self.pred_layer = HalfDSLayer(CHANNELS)
        self.classifier = nn.Linear(CHANNELS, num_classes)
        msra_fill(self.classifier)
        self.conv_out_mask = nn.Sequential(nn.Conv2d(32, 1, 1))
        self.db_output_decoder = DBHead(32)

    def decoder_features(self, features: tuple[torch.Tensor, ...], weighted: torch.Tensor) -> torch.Tensor:
        """p1 (32 channels at the input size) from x1..x4 and the consensus-weighted x5."""
        x1, x2, x3, x4, _ = features
        p = self.enlayer5(self.top_layer(weighted))
        levels = (
            (x4, self.latlayer5, self.enlayer4),
            (x3, self.latlayer4, self.enlayer3),
            (x2, self.latlayer3, self.enlayer2),
            (x1, self.latlayer2, self.enlayer1),
        )
        for lateral, latlayer, enlayer in levels:
            p = enlayer(upsample(p, lateral.shape[-2:]) + latlayer(lateral))
        return p

    def forward(self, images: torch.Tensor):  # noqa: ANN201 -- list in eval, TrainOutputs in training
        features = self.bb(images)
        x5 = features[4]
        weighted, negative = self.co_x5(x5)
        p1 = upsample(self.decoder_features(features, weighted), images.shape[-2:])
        maps = [self.db_output_decoder(p1)]
        if not self.training:
            return maps
        pooled = F.adaptive_avg_pool2d(x5, 1).flatten(1)
        contrast = upsample(self.pred_layer(torch.cat([weighted, negative])), images.shape[-2:])
        mask = torch.sigmoid(self.conv_out_mask(p1))
        masked_x5 = self.bb(images * mask)[4]
        masked_logits = self.classifier(F.adaptive_avg_pool2d(masked_x5, 1).flatten(1))
        return TrainOutputs(maps, self.classifier(pooled), contrast, masked_logits, pooled)


# --- losses -------------------------------------------------------------------------------------------


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision (autocast) tensors; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def bce_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``nn.BCELoss()`` (mean) at full precision; autocast refuses BCE on probabilities, so it is off here."""
    with torch.autocast(pred.device.type, enabled=False):
        return F.binary_cross_entropy(full_precision(pred), gt.to(full_precision(pred).dtype))


def group_triplet_loss(pooled: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """GST: with A, B the two groups' features (n each) and h = n // 2, triplet(A[:h], A[-h:], B[:h]) +
    triplet(B[:h], B[-h:], A[:h]) (``nn.TripletMarginLoss(margin)``, mean)."""
    n = pooled.shape[0] // 2
    half = n // 2
    first, second = pooled[:n], pooled[n:]
    return F.triplet_margin_loss(
        first[:half], first[-half:], second[:half], margin=margin
    ) + F.triplet_margin_loss(second[:half], second[-half:], first[:half], margin=margin)


def loss_parts(outputs: TrainOutputs, masks: torch.Tensor, labels: torch.Tensor, cfg: dict) -> dict:
    """The release's unweighted loss terms of one batch."""
    final = full_precision(outputs.maps[-1])
    return {
        "bce": bce_loss(final, masks),
        "iou": iou_loss(final, masks),
        "triplet": group_triplet_loss(
            full_precision(outputs.pooled_x5), float(cfg.get("triplet_margin", 0.1))
        ),
        "cls": F.cross_entropy(full_precision(outputs.class_logits), labels),
        "contrast": binary_focal_loss(
            full_precision(outputs.contrast_logits), torch.cat([masks, torch.zeros_like(masks)])
        ),
        "cls_mask": F.cross_entropy(full_precision(outputs.masked_class_logits), labels),
    }


def weighted_total(parts: dict[str, torch.Tensor], cfg: dict) -> torch.Tensor:
    """Sum of the loss terms times the recipe's ``loss_weights`` (release values by default)."""
    weights = {**LOSS_WEIGHTS, **(cfg.get("loss_weights") or {})}
    return sum(float(weights[name]) * value for name, value in parts.items())


def training_loss(model: nn.Module, batch: dict[str, torch.Tensor], cfg: dict) -> dict[str, torch.Tensor]:
    """Total loss of the step: the batch's, plus the ``joint_*`` batch's when present; parts are summed too."""
    total, summed = None, {}
    for prefix in ("", "joint_"):
        if f"{prefix}images" not in batch:
            continue
        parts = loss_parts(
            model(batch[f"{prefix}images"]), batch[f"{prefix}masks"], batch[f"{prefix}labels"], cfg
        )
        loss = weighted_total(parts, cfg)
        total = loss if total is None else total + loss
        for name, value in parts.items():
            summed[name] = value if name not in summed else summed[name] + value
    return {"loss": total, **summed}


# --- training data ------------------------------------------------------------------------------------

_JOINT_SETS: dict[tuple[str, str, int], GroupDataset] = {}


def joint_dataset(dataset: GroupDataset, cfg: dict) -> GroupDataset | None:
    """The recipe's ``joint_train_set`` (COCO-SEG in the release) from the same data root, loaded once."""
    name = cfg.get("joint_train_set")
    if not name:
        return None
    if str(name).lower() == "synthetic":  # smoke runs: the generated training set plays both roles
        return dataset
    key = (str(dataset.data_root), str(name), int(cfg["size"]))
    if key not in _JOINT_SETS:
        _JOINT_SETS[key] = GroupDataset(dataset.data_root, str(name), int(cfg["size"]))
    return _JOINT_SETS[key]


def prepare_config(cfg: dict, dataset: GroupDataset) -> dict:
    """Fix ``num_classes: auto`` to the larger group count of the training sets; check the classifier fits."""
    counts = [len(dataset.groups)]
    joint = joint_dataset(dataset, cfg)
    if joint is not None:
        counts.append(len(joint.groups))
    num_classes = cfg.get("num_classes")
    if num_classes in (None, "auto"):
        return {**cfg, "num_classes": max(counts)}
    if max(counts) > int(num_classes):
        raise ValueError(
            f"a training set has {max(counts)} groups but the recipe's num_classes is {num_classes}"
        )
    return cfg


def build_model(cfg: dict) -> GCoNetPlus:
    """GCoNet+ with VGG16-BN (ImageNet weights unless ``pretrained: false``); the backbone is frozen unless
    ``trainable_backbone`` names parameter prefixes (e.g. ``[conv5.40]``)."""
    backbone = str(cfg.get("backbone", "vgg16_bn"))
    if backbone != "vgg16_bn":
        raise ValueError(f"GCoNet+ is released with vgg16_bn only, got backbone {backbone!r}")
    model = GCoNetPlus(int(cfg.get("num_classes") or 291), vgg_stages(backbone, cfg))
    trainable = tuple(cfg.get("trainable_backbone") or ())
    for name, parameter in model.bb.named_parameters():
        parameter.requires_grad_(bool(trainable) and name.startswith(trainable))
    return model


def augment_one(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The release's ``preproc``: flip (p), rotate (p, integer angle in [-a, a), BICUBIC), colour enhance."""
    picture, label = Image.fromarray(image), Image.fromarray(mask)
    if rng.random() < float(cfg.get("flip_p", 0.5)):
        picture, label = picture.transpose(Image.FLIP_LEFT_RIGHT), label.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < float(cfg.get("rotate_p", 0.2)):
        limit = int(cfg.get("max_angle", 15))
        angle = int(rng.integers(-limit, limit))
        picture, label = picture.rotate(angle, Image.BICUBIC), label.rotate(angle, Image.BICUBIC)
    if cfg.get("color_enhance", True):
        for enhancer, low, high in (
            (ImageEnhance.Brightness, 5, 15),
            (ImageEnhance.Contrast, 5, 15),
            (ImageEnhance.Color, 0, 20),
            (ImageEnhance.Sharpness, 0, 30),
        ):
            picture = enhancer(picture).enhance(int(rng.integers(low, high + 1)) / 10.0)
    return np.asarray(picture), np.asarray(label)


def to_batch(images: list[np.ndarray], masks: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet-normalised ``[N, 3, S, S]`` and masks in [0, 1] ``[N, 1, S, S]`` (soft after rotation)."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (batch - mean) / std, torch.from_numpy(np.stack(masks).astype(np.float32) / 255.0)[:, None]


def _pair_batch(dataset: GroupDataset, pair: GroupPair, cfg: dict, rng: np.random.Generator) -> dict:
    images, masks, labels = [], [], []
    for group_index, indices in ((pair.first, pair.first_images), (pair.second, pair.second_images)):
        group = dataset.groups[group_index]
        for index in indices.tolist():
            image, mask = dataset.image(group, index), dataset.mask(group, index)
            if cfg.get("augment", True):
                image, mask = augment_one(image, mask, rng, cfg)
            images.append(image)
            masks.append(mask)
        labels += [group_index] * len(indices)
    image_tensor, mask_tensor = to_batch(images, masks)
    return {"images": image_tensor, "masks": mask_tensor, "labels": torch.tensor(labels, dtype=torch.long)}


def _epoch_pairs(
    dataset: GroupDataset, cfg: dict, rng: np.random.Generator, shuffle: bool
) -> list[GroupPair]:
    """Every group once as first group (random partner); in folder order unless ``shuffle``."""
    sizes = [len(dataset.items[group]) for group in dataset.groups]
    pairs = group_pairs(sizes, rng, int(cfg.get("group_size", 26)))
    return pairs if shuffle else sorted(pairs, key=lambda pair: pair.first)


def make_batches(
    dataset: GroupDataset, cfg: dict, rng: np.random.Generator
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch. Alone: one batch per group. With ``joint_train_set``: as the release's
    ``zip(DUTS_class loader, COCO-SEG loader)`` -- min(#groups) steps, the first set's groups in folder order
    (its loader does not shuffle), the joint set's shuffled, each batch a group with a random partner."""
    joint = joint_dataset(dataset, cfg)
    first = _epoch_pairs(dataset, cfg, rng, shuffle=joint is None)
    if joint is None:
        for pair in first:
            yield _pair_batch(dataset, pair, cfg, rng)
        return
    second = _epoch_pairs(joint, cfg, rng, shuffle=True)
    for pair, joint_pair in zip(first, second, strict=False):
        batch = _pair_batch(dataset, pair, cfg, rng)
        batch.update(
            {f"joint_{key}": value for key, value in _pair_batch(joint, joint_pair, cfg, rng).items()}
        )
        yield batch


# --- prediction ---------------------------------------------------------------------------------------


@torch.no_grad()
def predict_group(model: GCoNetPlus, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Final maps ``[N, 1, H, W]`` in (0, 1) of one whole group (GAM consensus and DB fallback over all N)."""
    return model(images)[-1]


def _head_input(model: GCoNetPlus, images: torch.Tensor, consensus: torch.Tensor) -> torch.Tensor:
    features = model.bb(images)
    p1 = model.decoder_features(features, features[4] * consensus)
    return upsample(p1, images.shape[-2:])


@torch.no_grad()
def group_context(model: GCoNetPlus, images: torch.Tensor, cfg: dict) -> tuple[torch.Tensor, bool]:
    """(GAM consensus of the whole group, whether the DB head falls back to k = 50 for the group), computed
    ``predict_chunk`` images at a time: the same values as one pass over the group."""
    x5 = torch.cat([model.bb(part)[4] for part in _parts(images, cfg)])
    consensus = model.co_x5.consensus(x5, int(cfg.get("predict_chunk") or 0) or None)
    fallback = any(
        db_overflows(*model.db_output_decoder.maps(_head_input(model, part, consensus)))
        for part in _parts(images, cfg)
    )
    return consensus, fallback


@torch.no_grad()
def decode(
    model: GCoNetPlus, images: torch.Tensor, context: tuple[torch.Tensor, bool], cfg: dict
) -> torch.Tensor:
    """Final maps ``[n, 1, H, W]`` of some images of a group given the group's context."""
    consensus, fallback = context
    return torch.cat(
        [
            model.db_output_decoder(_head_input(model, part, consensus), fallback)
            for part in _parts(images, cfg)
        ]
    )


def adapt_state_dict(state: dict) -> dict:
    """Accept the release's files: a bare state dict (``ultimate*.pth``, ``ep*.pth``) or ``checkpoint.pth``
    (``{"epoch", "state_dict", "scheduler"}``); a DataParallel ``module.`` prefix is stripped."""
    state = state.get("state_dict", state)
    return {key.removeprefix("module."): value for key, value in state.items()}
