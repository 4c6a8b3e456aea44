"""DCFM (Yu et al., CVPR 2022): "Democracy Does Matter: Comprehensive Feature Mining for Co-Salient Object
Detection".

A port of the official ``DCFMNet`` (``siyueyu/DCFM`` at commit 05800b6, ``models/main.py``, ``models/vgg.py``,
``loss.py``, ``train.py``, ``dataset.py``, ``test.py``). Module and parameter names follow the release, so its
checkpoint (``best_ep198_Smeasure0.7019.pth`` / ``dcfm.pth``: a bare ``DCFMNet`` state dict; ``checkpoint.pth``
of its ``train.py``: ``{"epoch", "state_dict"}``) loads with ``strict=True`` once the unused VGG FC layers
(``backbone.classifier.*``) are dropped (``adapt_state_dict``).

Shapes for a 224 x 224 input (the release's size):

* ``backbone``: VGG16 blocks x1..x5 (64@224 .. 512@14), GCoNet's layout (``reference_models.backbones.VGGBlocks``).
* ``fusion`` (official ``AttLayer``, the "democratic" consensus): x = conv1x1(x5) + x5; affinity between every
  position of each image and every position of the group (query/key 1x1 convs, scaled by 1/sqrt(512)), max over
  each other image's positions, mean over the images, softmax over the image's positions; the position(s) at the
  maximum are the image's seed; correlation of the L2-normalised features with every image's seed (ReLU at test
  time only), mean over the seeds, min-max normalised per image -> cormap; prototype = mean over the group of
  x * cormap; output x * prototype + x * cormap.
* ``aug`` (official ``AugAttentionModule``, per image): self-attention over the 14 x 14 positions whose softmax
  weights are re-weighted by (rank + 1)^3 for the positive logits (rank 0 = the largest), 1 for the others,
  plus the (ReLU'd 1x1-conv) input.
* ``decoder``: GCoNet's FPN (64 channels, ``LatLayer``/``EnLayer`` reused from ``reference_models.gconet``) with
  ``align_corners=False`` resizing and four side outputs of logits; the final map is sigmoid(last side).

Training (``training_loss``, one group of up to 16 images per step, as its ``train.py``): the side maps' scaled
IoU loss sum_s [IoU(sigmoid(s), gt) + IoU(1 - sigmoid(s), 1 - gt)] (IoU averaged over the images) plus 0.1 x the
self-contrastive loss -log((1 + cos(p, p_fg)) / 2 + 1e-5) - log(1 - (1 + cos(p, p_bg)) / 2 + 1e-5) between the
group prototype p and the prototypes of the masked features x5 * gt and x5 * (1 - gt) (gt resized bilinearly to
conv5's size). Adam (betas 0.9/0.99, weight decay 1e-4), lr 1e-4, backbone 1e-5 with only conv5_3 training;
non-backbone layers Kaiming-normal (fan_in) initialised with zero biases.

Deviations from the release (none changes an eval-mode output):

* The VGG FC layers (``backbone.classifier``, 123.6 M parameters) are not built: the release stores them in its
  checkpoint but never calls them; ``adapt_state_dict`` drops them.
* The test-time ``torch.no_grad`` wrapper (``set_mode('test')``) is ``predict_group``'s decorator; the forward's
  ``gt`` argument, unused at test time, is optional: given (training), the forward also returns the prototypes.
* ``group_context``/``decode`` (groups larger than ``--max-group-size``) compute the fusion's seeds and prototype
  over the whole group chunk by chunk, the same values as one pass; the release has no chunked prediction.
* Training data: groups are visited in sorted folder order (the release's loader does not shuffle, but walks
  ``os.listdir`` order); images are decoded with cosalbench's reader (OpenCV, EXIF orientation ignored, as PIL
  reads them) from their original files, then transformed exactly as the release (``augment_one``: random scale of
  the short side to U{0.8..1.2} x 2 size with zero padding and a random 2 size crop, resize to size, flip p = 0.5,
  rotation U(-90, 90) degrees; BILINEAR image, NEAREST mask); the draws come from cosalbench's seeded NumPy
  generator instead of Python's ``random`` (same ranges, same order per image).
* The release validates on CoCA after every epoch and keeps the best-S-measure checkpoint (``best_ep*_Smeasure*``,
  a choice made on a test set); ``train-reference`` writes the final weights of its 200 epochs (``final.pth``)
  and ``best.pth``, chosen on training groups held out by the recipe's ``validation`` section.
* The release's quirk kept on purpose: the (rank + 1)^3 weights are computed in float32 whatever the model's
  dtype (``attention_sort.float()``), exact up to 256 positions per image (input sizes <= 256).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn
from torch.nn import functional as F

from cosalbench import io
from reference_models import gconet, schema
from reference_models.backbones import VGGBlocks, vgg_blocks
from reference_models.data import GroupDataset, to_tensor_batch
from reference_models.gconet import UNUSED_OFFICIAL_PREFIXES, EnLayer, LatLayer, _parts
from reference_models.gconet_plus import full_precision

DEFAULT_RECIPE = "dcfm.yaml"
CHECKPOINT_HINT = (
    "download the released DCFM weights ('papermodel' in the siyueyu/DCFM README: "
    "https://drive.google.com/file/d/1cfuq4eJoCwvFR9W1XOJX7Y0ttd8TGjlp) and pass the .pth file with --checkpoint"
)
CHANNELS = 512  # conv5 channels
SCL_WEIGHT = 0.1  # train.py: loss = loss_iou + 0.1 * loss_scl
CROP_SCALE = (0.8, 1.2)  # RandomScaleCrop: short side drawn in [0.8, 1.2] x the crop size (2 x size)

RECIPE_KEYS: dict[str, schema.Field] = {
    "group_size": schema.Field("int", 16, "images of the group per step (max_num; all if fewer)", low=1),
    "trainable_backbone": schema.Field("strs", ["conv5.conv5_3"], "backbone parameter prefixes that train"),
    "scl_weight": schema.Field("float", SCL_WEIGHT, "weight of the self-contrastive loss", low=0.0),
    "scale_crop": schema.Field(
        "bool", True, "RandomScaleCrop: rescale the original image (short side 0.8-1.2 x 2 size), crop 2 size"
    ),
}
OFFICIAL_PREFIXES = ("module.", "dcfmnet.")  # DataParallel, and a state dict of the DCFM wrapper


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False``, as everywhere in DCFM."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def conv1x1(channels: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 1)


class FusionOutputs(NamedTuple):
    """What the fusion returns (the release's ``x5, proto1, x5*proto1+x51, mask``)."""

    features: torch.Tensor  # conv1x1(x5) + x5
    prototype: torch.Tensor  # [1, C, 1, 1]
    weighted: torch.Tensor  # features * prototype + features * cormap
    seed_mask: torch.Tensor  # [N, 1, h, w], 1 at each image's seed position(s)


class AttLayer(nn.Module):
    """The consensus fusion (official ``AttLayer``, attribute ``fusion``); see the module docstring."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.query_transform = conv1x1(channels)
        self.key_transform = conv1x1(channels)
        self.scale = 1.0 / channels**0.5
        self.conv = conv1x1(channels)

    def prepare(self, x5: torch.Tensor) -> torch.Tensor:
        """conv1x1(x5) + x5, the features every later step works on."""
        return self.conv(x5) + x5

    def keys(self, features: torch.Tensor) -> torch.Tensor:
        """Keys ``[C, N*h*w]`` (images outermost)."""
        return self.key_transform(features).transpose(0, 1).flatten(1)

    def seed_mask(self, features: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``[n, 1, h, w]``: 1 where the image's group-voted weight is maximal.

        Per position: max affinity over each group image's positions (``keys`` holds the whole group's),
        mean over the group's images; softmax over the image's positions."""
        n, channels, height, width = features.shape
        queries = self.query_transform(features).flatten(2).transpose(1, 2).reshape(-1, channels)
        affinity = (queries @ keys) * self.scale  # [n*h*w, N*h*w]
        votes = affinity.view(n * height * width, -1, height * width).amax(dim=-1).mean(dim=-1)
        weights = F.softmax(votes.view(n, -1), dim=-1)
        mask = (weights == weights.amax(dim=-1, keepdim=True)).to(features.dtype)
        return mask.view(n, 1, height, width)

    def seeds(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each image's seed ``[n, C, 1, 1]``: its normalised features summed over its seed positions."""
        return (F.normalize(features, dim=1) * mask).sum(dim=(2, 3), keepdim=True)

    def cormap(self, features: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """``[n, 1, h, w]`` in [0, 1]: correlation with every group seed (ReLU'd in eval mode), mean over the
        seeds, min-max normalised per image."""
        n, _, height, width = features.shape
        correlation = F.conv2d(F.normalize(features, dim=1), weight=seeds)
        if not self.training:
            correlation = torch.relu(correlation)
        flat = correlation.mean(dim=1).view(n, -1)
        low, high = flat.amin(dim=1, keepdim=True), flat.amax(dim=1, keepdim=True)
        return ((flat - low) / (high - low + 1e-12)).view(n, 1, height, width)

    def forward(self, x5: torch.Tensor) -> FusionOutputs:
        features = self.prepare(x5)
        mask = self.seed_mask(features, self.keys(features))
        correlated = features * self.cormap(features, self.seeds(features, mask))
        prototype = correlated.mean(dim=(0, 2, 3), keepdim=True)
        return FusionOutputs(features, prototype, features * prototype + correlated, mask)


def _transform(channels: int) -> nn.Sequential:
    return nn.Sequential(conv1x1(channels), conv1x1(channels))


class AugAttentionModule(nn.Module):
    """Rank-weighted self-attention of each image (official ``AugAttentionModule``, attribute ``aug``)."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.query_transform = _transform(channels)
        self.key_transform = _transform(channels)
        self.value_transform = _transform(channels)
        self.scale = 1.0 / channels**0.5
        self.conv = nn.Sequential(conv1x1(channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = x.shape
        x = self.conv(x)
        queries = self.query_transform(x).flatten(2).transpose(1, 2)  # [n, hw, C]
        keys = self.key_transform(x).flatten(2)  # [n, C, hw]
        values = self.value_transform(x).flatten(2).transpose(1, 2)  # [n, hw, C]
        logits = torch.bmm(queries, keys) * self.scale  # [n, hw, hw]
        attention = F.softmax(logits, dim=-1)
        # rank 0 = the largest logit of the row; the positive logits hold ranks 0..(#positive - 1)
        rank = logits.argsort(dim=-1, descending=True).argsort(dim=-1)
        boost = torch.where(logits >= 0, (rank + 1).float().pow(3), 1.0)
        out = torch.bmm(attention * boost, values)
        return out.view(n, height, width, channels).permute(0, 3, 1, 2) + x


class DSLayer(gconet.DSLayer):
    """Side output: GCoNet's (conv3x3 -> 64, ReLU) x 2, conv1x1 -> 1, without its sigmoid (logits)."""

    def __init__(self, in_channels: int = 64) -> None:
        super().__init__(in_channels)
        self.predlayer = nn.Sequential(self.predlayer[0])


LEVELS = (4, 3, 2, 1)  # decoder levels, top (x4, stride 8) to bottom (x1, stride 1)
LATERAL_CHANNELS = (512, 256, 128, 64)


class Decoder(nn.Module):
    """GCoNet's top-down path at 64 channels with ``align_corners=False``; returns the four side logits.

    Layers ``latlayer{4..1}``, ``enlayer{4..1}``, ``dslayer{4..1}``, registered in the release's order."""

    def __init__(self) -> None:
        super().__init__()
        self.toplayer = nn.Sequential(nn.Conv2d(CHANNELS, 64, 1), nn.ReLU(inplace=True), nn.Conv2d(64, 64, 1))
        for level, channels in zip(LEVELS, LATERAL_CHANNELS, strict=True):
            self.add_module(f"latlayer{level}", LatLayer(channels))
        for kind in (EnLayer, DSLayer):
            for level in LEVELS:
                self.add_module(f"{kind.__name__.lower()}{level}", kind())

    def forward(self, top: torch.Tensor, features: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """Side logits [p4, p3, p2, p1] at the input size (x1's) from x1..x4 and the attended conv5 map."""
        size = features[0].shape[-2:]
        p = self.toplayer(top)
        sides = []
        for level in LEVELS:
            lateral = features[level - 1]
            p = getattr(self, f"latlayer{level}")(lateral) + resize(p, lateral.shape[-2:])
            p = getattr(self, f"enlayer{level}")(p)
            sides.append(resize(getattr(self, f"dslayer{level}")(p), size))
        return sides


class TrainOutputs(NamedTuple):
    """What the training forward returns (the release's ``preds, proto, proto_pos, proto_neg``)."""

    sides: list[torch.Tensor]  # side logits [p4, p3, p2, p1] at the input size
    prototype: torch.Tensor  # [1, C, 1, 1] of the group
    foreground_prototype: torch.Tensor  # of fusion(x5 * gt)
    background_prototype: torch.Tensor  # of fusion(x5 * (1 - gt))


class DCFMNet(nn.Module):
    """The network (official ``DCFMNet``, the module the release's checkpoints hold). ``forward`` returns the
    four side logits, and with masks (training) the prototypes the self-contrastive loss needs."""

    def __init__(self, backbone: VGGBlocks | None = None) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else VGGBlocks("vgg16")
        self.aug = AugAttentionModule()
        self.fusion = AttLayer(CHANNELS)
        self.decoder = Decoder()

    def decode(self, features: tuple[torch.Tensor, ...], weighted: torch.Tensor) -> list[torch.Tensor]:
        """Side logits from the backbone features and the fusion's weighted conv5 map."""
        return self.decoder(self.aug(weighted), features)

    def forward(self, images: torch.Tensor, masks: torch.Tensor | None = None):  # noqa: ANN201
        """Side logits ``[p4, p3, p2, p1]``; with ``masks`` (training) ``TrainOutputs`` with the prototypes."""
        features = self.backbone(images)
        x5 = features[4]
        fused = self.fusion(x5)
        sides = self.decode(features, fused.weighted)
        if masks is None:
            return sides
        small = resize(masks.to(x5.dtype), x5.shape[-2:])
        foreground = self.fusion(x5 * small).prototype
        background = self.fusion(x5 * (1 - small)).prototype
        return TrainOutputs(sides, fused.prototype, foreground, background)


# --- losses -------------------------------------------------------------------------------------------


def iou_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean over images of 1 - |pred * gt| / (|gt| + |pred| - |pred * gt| + 1e-5) (DCFM's ``IoU_loss``)."""
    inter = (pred * gt).sum(dim=(1, 2, 3))
    union = gt.sum(dim=(1, 2, 3)) + pred.sum(dim=(1, 2, 3)) - inter
    return (1.0 - inter / (union + 1e-5)).mean()


def scaled_iou_loss(sides: list[torch.Tensor], gt: torch.Tensor) -> torch.Tensor:
    """``Scale_IoU``: foreground plus background IoU loss of every side output's sigmoid, summed."""
    total = torch.zeros((), dtype=sides[0].dtype, device=gt.device)
    for side in sides:
        probability = torch.sigmoid(side)
        total = total + iou_loss(probability, gt) + iou_loss(1 - probability, 1 - gt)
    return total


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The release's ``compute_cos_dis`` for two ``[1, C, 1, 1]`` vectors: b.a / (|b| |a| + 1e-5)."""
    a, b = a.flatten(), b.flatten()
    return (b @ a) / (b.norm() * a.norm() + 1e-5)


def self_contrastive_loss(
    prototype: torch.Tensor, foreground: torch.Tensor, background: torch.Tensor
) -> torch.Tensor:
    """train.py's ``sclloss``: pull the group prototype towards the foreground one, push it from the background."""
    close = (1 + cosine(prototype, foreground)) * 0.5
    far = (1 + cosine(prototype, background)) * 0.5
    return -torch.log(close + 1e-5) - torch.log(1 - far + 1e-5)


def loss_parts(outputs: TrainOutputs, masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """The release's two loss terms of one group: ``iou`` (scaled IoU of the side maps) and ``scl``."""
    return {
        "iou": scaled_iou_loss([full_precision(side) for side in outputs.sides], masks),
        "scl": self_contrastive_loss(*(full_precision(p) for p in outputs[1:])),
    }


def training_loss(model: nn.Module, batch: dict[str, torch.Tensor], cfg: dict) -> dict[str, torch.Tensor]:
    """Total = iou + ``scl_weight`` (0.1) x scl of one group (train.py); the parts are logged."""
    parts = loss_parts(model(batch["images"], batch["masks"]), batch["masks"])
    total = parts["iou"] + float(cfg.get("scl_weight", SCL_WEIGHT)) * parts["scl"]
    return {"loss": total, **parts}


# --- model interface ----------------------------------------------------------------------------------


def init_weights(module: nn.Module) -> None:
    """The release's ``weights_init`` for the layers outside the backbone: Kaiming-normal (fan_in, relu)
    convolutions with zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def build_model(cfg: dict) -> DCFMNet:
    """DCFM with VGG16 (ImageNet weights unless ``pretrained: false``); only ``trainable_backbone`` trains."""
    model = DCFMNet(vgg_blocks("vgg16", cfg))
    for part in (model.aug, model.fusion, model.decoder):
        init_weights(part)
    trainable = tuple(cfg.get("trainable_backbone", ["conv5.conv5_3"]) or ())
    for name, parameter in model.backbone.named_parameters():
        parameter.requires_grad_(bool(trainable) and name.startswith(trainable))
    return model


# --- training data ------------------------------------------------------------------------------------


class AugmentDraw(NamedTuple):
    """The random draws of the release's training transform for one image."""

    short_side: int  # RandomScaleCrop: the rescaled short side
    crop_x: int  # left edge of the crop (0 .. width - crop)
    crop_y: int  # top edge of the crop (0 .. height - crop)
    flip: bool  # RandomHorizontalFlip
    angle: float  # RandomRotation, degrees


def _rescaled(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at ``short_side`` (the release's int() truncation)."""
    if height > width:
        return short_side, int(1.0 * height * short_side / width)
    return int(1.0 * width * short_side / height), short_side


def draw_augmentation(width: int, height: int, cfg: dict, rng: np.random.Generator) -> AugmentDraw:
    """Draw one image's transform the way the release does (random.randint / random / uniform)."""
    crop = 2 * int(cfg["size"])
    short, x, y = crop, 0, 0
    if cfg.get("scale_crop", True):
        short = int(rng.integers(int(crop * CROP_SCALE[0]), int(crop * CROP_SCALE[1]) + 1))
        new_width, new_height = (max(side, crop) for side in _rescaled(width, height, short))
        x, y = int(rng.integers(0, new_width - crop + 1)), int(rng.integers(0, new_height - crop + 1))
    flip = bool(rng.random() < float(cfg.get("flip_p", 0.5)))
    limit = float(cfg.get("max_angle", 90.0))
    return AugmentDraw(short, x, y, flip, float(rng.uniform(-limit, limit)))


def augment_one(
    picture: Image.Image, label: Image.Image, draw: AugmentDraw, cfg: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The release's training transform: RandomScaleCrop(2 size, 2 size) -> FixedResize(size) -> flip ->
    RandomRotation; BILINEAR for the image, NEAREST for the mask; black (0) where padding or rotation uncovers."""
    size, crop = int(cfg["size"]), 2 * int(cfg["size"])
    if cfg.get("scale_crop", True):
        shape = _rescaled(*picture.size, draw.short_side)
        picture, label = picture.resize(shape, Image.BILINEAR), label.resize(shape, Image.NEAREST)
        if draw.short_side < crop:
            border = (0, 0, max(crop - shape[0], 0), max(crop - shape[1], 0))
            picture, label = ImageOps.expand(picture, border, fill=0), ImageOps.expand(label, border, fill=0)
        box = (draw.crop_x, draw.crop_y, draw.crop_x + crop, draw.crop_y + crop)
        picture, label = picture.crop(box), label.crop(box)
    picture, label = picture.resize((size, size), Image.BILINEAR), label.resize((size, size), Image.NEAREST)
    if draw.flip:
        picture, label = picture.transpose(Image.FLIP_LEFT_RIGHT), label.transpose(Image.FLIP_LEFT_RIGHT)
    picture, label = picture.rotate(draw.angle, Image.BILINEAR), label.rotate(draw.angle, Image.NEAREST)
    return np.asarray(picture), np.asarray(label)


def _original(dataset: GroupDataset, group: str, index: int) -> tuple[Image.Image, Image.Image]:
    """The image (RGB) and mask (L) at their stored size, decoded as the predictor and loader do."""
    item = dataset.items[group][index]
    rgb = io.read_bgr(item.image_path, ignore_orientation=True)[:, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(rgb)), Image.fromarray(
        io.read_gray(item.gt_path, ignore_orientation=True)
    )


def group_batch(
    dataset: GroupDataset, group: str, cfg: dict, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """One step of the release: min(|group|, group_size) images of ``group`` drawn without replacement,
    each through ``augment_one`` (or only resized with ``augment: false``); masks stay k / 255 as ToTensor
    gives them."""
    count = len(dataset.items[group])
    chosen = rng.choice(count, size=min(count, int(cfg.get("group_size", 16))), replace=False)
    images, masks = [], []
    for index in chosen.tolist():
        picture, label = _original(dataset, group, index)
        if cfg.get("augment", True):
            image, mask = augment_one(picture, label, draw_augmentation(*picture.size, cfg, rng), cfg)
        else:
            size = (int(cfg["size"]),) * 2
            image, mask = (
                np.asarray(picture.resize(size, Image.BILINEAR)),
                np.asarray(label.resize(size, Image.NEAREST)),
            )
        images.append(image)
        masks.append(mask)
    batch, _ = to_tensor_batch(images)
    return {"images": batch, "masks": torch.from_numpy(np.stack(masks).astype(np.float32) / 255.0)[:, None]}


def make_batches(
    dataset: GroupDataset, cfg: dict, rng: np.random.Generator
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch as the release's loader (batch size 1 group, ``shuffle=False``): every group once, in folder
    order, decoded from its original files (the scale-crop needs them)."""
    for group in dataset.groups:
        yield group_batch(dataset, group, cfg, rng)


@torch.no_grad()
def predict_group(model: DCFMNet, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Final maps ``[N, 1, H, W]`` in (0, 1) of one whole group: sigmoid of the last side output."""
    return torch.sigmoid(model(images)[-1])


class GroupContext(NamedTuple):
    """What the fusion needs of the whole group: every image's seed and the group prototype."""

    seeds: torch.Tensor  # [N, C, 1, 1]
    prototype: torch.Tensor  # [1, C, 1, 1]


@torch.no_grad()
def group_context(model: DCFMNet, images: torch.Tensor, cfg: dict) -> GroupContext:
    """The fusion's seeds and prototype over the whole group, ``predict_chunk`` images at a time (the keys of
    the whole group are kept, ``[512, N*h*w]``): the same values as one pass."""
    fusion = model.fusion
    features = [fusion.prepare(model.backbone(part)[4]) for part in _parts(images, cfg)]
    keys = torch.cat([fusion.keys(part) for part in features], dim=1)
    seeds = torch.cat([fusion.seeds(part, fusion.seed_mask(part, keys)) for part in features])
    total = sum((part * fusion.cormap(part, seeds)).sum(dim=(0, 2, 3), keepdim=True) for part in features)
    count = sum(part.shape[0] * part.shape[2] * part.shape[3] for part in features)
    return GroupContext(seeds, total / count)


@torch.no_grad()
def decode(model: DCFMNet, images: torch.Tensor, context: GroupContext, cfg: dict) -> torch.Tensor:
    """Final maps ``[n, 1, H, W]`` of some images of a group given the group's context."""
    maps = []
    for part in _parts(images, cfg):
        features = model.backbone(part)
        x = model.fusion.prepare(features[4])
        weighted = x * context.prototype + x * model.fusion.cormap(x, context.seeds)
        maps.append(torch.sigmoid(model.decode(features, weighted)[-1]))
    return torch.cat(maps)


def adapt_state_dict(state: dict) -> dict:
    """Accept the release's files: a bare ``DCFMNet`` state dict (``best_ep*_Smeasure*.pth``, ``dcfm.pth``,
    ``model-*.pt``) or its ``checkpoint.pth`` (``{"epoch", "state_dict"}``); ``module.``/``dcfmnet.`` prefixes
    are stripped and the unused VGG FC layers dropped."""
    state = state.get("state_dict", state)
    adapted = {}
    for key, value in state.items():
        for prefix in OFFICIAL_PREFIXES:
            key = key.removeprefix(prefix)
        if not key.startswith(UNUSED_OFFICIAL_PREFIXES):
            adapted[key] = value
    return adapted
