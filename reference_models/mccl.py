"""MCCL (Zheng et al., AAAI 2023): memory-aided contrastive consensus learning for co-salient object detection.

A predict-only port of the official release ``ZhengPeng7/MCCL`` at commit **40ad44c** (``models/GCoNet.py``,
``models/modules.py``, ``models/pvt.py``, ``config.py``, ``dataset.py``, ``test.py``) in the configuration
its ``config.py`` ships: backbone ``trans-pvt`` (PVTv2-B2, ``reference_models.pvt``), consensus ``GCAM`` on
the last stage, decoder blocks ``ResBlk`` with BN (``use_bn`` is on for every backbone but plain VGG16), no
ASPP (``dec_att = ''``), one output (``output_number = 1``), no DB head, no refiner. Module and parameter
names follow the release, so its checkpoints (bare ``state_dict()`` files, as its ``train.py`` saves them)
load with ``strict=True``: 416 entries, 27,036,609 parameters.

Shapes for a 256 x 256 input: PVTv2-B2 stages x1..x4 = 64@64, 128@32, 320@16, 512@8.

* GCAM (``co_x4.all_attention``) is GCoNet's group attention (``reference_models.gconet.GroupAttention``,
  the same maths and layer names): affinity of every position of the group with every other, max per image,
  mean over the images, softmax over each image's positions; consensus = mean over the group of
  ``conv6(x4 * attention)`` (a 512-vector); the decoder gets ``x4 * consensus``.
* Decoder: ``top_layer`` ResBlk(512 -> 320), then three levels ``dec_layer{4,3,2}`` (ResBlk 320->320,
  320->128, 128->64), each followed by a bilinear (``align_corners=True``) upsampling to the next stage and
  the sum with that stage through a 1x1 ``lat_layer``; ``dec_layer1`` ResBlk(64 -> 32), upsampling to the
  input size, ``conv_out1`` 1x1 -> 1 logit map. ``ResBlk`` is GCoNet+'s (conv3x3 -> 64, BN, ReLU,
  conv3x3, BN; no skip).
* Test time (``test.py``): resize to 256 x 256 (PIL bilinear), ImageNet normalisation, one forward pass per
  whole group; the logits are resized to each image's original size (bilinear, ``align_corners=True``) and
  *then* passed through the sigmoid (``MAP_LOGITS``: cosalbench's predictor does the same), 8-bit PNG by
  truncation (``ToPILImage``).
* Training mode (not trained here): the release splits the batch into its ``loadN = 2`` groups and weights
  each by its own consensus (``CoAttLayer``); stochastic depth 0.1 in the backbone. The forward keeps that,
  so ``model.train()`` behaves like the release; the memory-based contrastive module, the triplet loss and
  the adversarial integrity learning of ``train.py``/``loss.py``/``adv.py`` are not ported.

Deviations from the release (none changes an eval-mode output):

* Predict-only: no ``plan_batches``/``training_loss`` (``train-reference mccl`` refuses with one line).
* The PVTv2-B2 encoder is plain torch (no ``timm``); the release builds it from ``timm`` pieces
  (``DropPath``, ``trunc_normal_``, ``to_2tuple``) whose behaviour ``reference_models.pvt`` reproduces.
* The release loads ImageNet ``pvt_v2_b2.pth`` into the backbone at construction when the file exists;
  here weights come only from the MCCL checkpoint (prediction needs nothing else).
* ``group_context``/``decode`` (groups larger than ``--max-group-size``) compute the GCAM consensus over the
  whole group chunk by chunk; the release has no chunked prediction.
* The eval forward returns ``[logits]`` and the training forward ``([logits], weighted x4)``, as the release
  (whose ``config.db_output_decoder``/``refine`` branches are off in the released config and not built).
"""

from __future__ import annotations

import torch
from torch import nn

from reference_models.gconet import GroupAttention, _parts, upsample
from reference_models.gconet_plus import ResBlk
from reference_models.pvt import PyramidVisionTransformerV2, pvt_v2_b2
from reference_models.schema import Field

DEFAULT_RECIPE = "mccl.yaml"
CHANNELS = (64, 128, 320, 512)  # PVTv2-B2 stage widths x1..x4
TRAIN_GROUPS = 2  # config.loadN: groups per training batch, each weighted by its own consensus
CHECKPOINT_HINT = (
    "download the released MCCL weights linked from the ZhengPeng7/MCCL README: Google Drive or GitHub "
    "release v0.7; pass the .pth file with --checkpoint"
)
MAP_LOGITS = True  # predict_group returns logits: the predictor resizes them, then applies the sigmoid

RECIPE_KEYS: dict[str, Field] = {
    "backbone": Field("choice", "pvt_v2_b2", "backbone architecture", choices=("pvt_v2_b2",)),
}


class CoAttLayer(nn.Module):
    """The release's ``CoAttLayer`` with GCAM: x4 times the consensus of its group.

    Eval mode treats the batch as one group; training mode as ``TRAIN_GROUPS`` equal consecutive groups.
    """

    def __init__(self, channels: int = CHANNELS[-1]) -> None:
        super().__init__()
        self.all_attention = GroupAttention(channels)

    def consensus(self, x4: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """``[1, C, 1, 1]``: mean over images and positions of the GCAM-attended features of one group."""
        return self.all_attention(x4, block).mean(dim=(0, 2, 3), keepdim=True)

    def forward(self, x4: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x4 * self.consensus(x4)
        if x4.shape[0] % TRAIN_GROUPS:
            raise ValueError(f"MCCL training needs {TRAIN_GROUPS} equal groups, got a batch of {x4.shape[0]}")
        return torch.cat([group * self.consensus(group) for group in x4.chunk(TRAIN_GROUPS)])


class MCCL(nn.Module):
    """The network (official ``GCoNet`` class of the MCCL release, released config)."""

    def __init__(self, backbone: PyramidVisionTransformerV2 | None = None) -> None:
        super().__init__()
        c1, c2, c3, c4 = CHANNELS
        self.bb = backbone if backbone is not None else pvt_v2_b2()
        self.co_x4 = CoAttLayer(c4)
        self.top_layer = ResBlk(c4, c3)
        self.dec_layer4 = ResBlk(c3, c3)
        self.lat_layer4 = nn.Conv2d(c3, c3, 1)
        self.dec_layer3 = ResBlk(c3, c2)
        self.lat_layer3 = nn.Conv2d(c2, c2, 1)
        self.dec_layer2 = ResBlk(c2, c1)
        self.lat_layer2 = nn.Conv2d(c1, c1, 1)
        self.dec_layer1 = ResBlk(c1, c1 // 2)
        self.conv_out1 = nn.Sequential(nn.Conv2d(c1 // 2, 1, 1))

    def decode(
        self, features: list[torch.Tensor], weighted: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Logit map ``[N, 1, *size]`` from the stages x1..x3 and the consensus-weighted x4."""
        x1, x2, x3, _ = features
        p = self.top_layer(weighted)
        for decoder, lateral, stage in (
            (self.dec_layer4, self.lat_layer4, x3),
            (self.dec_layer3, self.lat_layer3, x2),
            (self.dec_layer2, self.lat_layer2, x1),
        ):
            p = upsample(decoder(p), stage.shape[-2:]) + lateral(stage)
        return self.conv_out1(upsample(self.dec_layer1(p), size))

    def forward(self, images: torch.Tensor):  # noqa: ANN201 -- list in eval, (list, x4) in training
        features = self.bb(images)
        weighted = self.co_x4(features[3])
        maps = [self.decode(features, weighted, images.shape[-2:])]
        return (maps, weighted) if self.training else maps


def build_model(cfg: dict) -> MCCL:
    """MCCL with PVTv2-B2 (random initialisation: the weights come from the checkpoint)."""
    backbone = str(cfg.get("backbone", "pvt_v2_b2"))
    if backbone != "pvt_v2_b2":
        raise ValueError(f"MCCL is released with pvt_v2_b2 only, got backbone {backbone!r}")
    return MCCL()


@torch.no_grad()
def predict_group(model: MCCL, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Logit maps ``[N, 1, H, W]`` of one whole group (``MAP_LOGITS``: the sigmoid follows the resize)."""
    return model(images)[-1]


@torch.no_grad()
def group_context(model: MCCL, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """The GCAM consensus ``[1, 512, 1, 1]`` of the whole group, ``predict_chunk`` images at a time."""
    x4 = torch.cat([model.bb(part)[3] for part in _parts(images, cfg)])
    return model.co_x4.consensus(x4, int(cfg.get("predict_chunk") or 0) or None)


@torch.no_grad()
def decode(model: MCCL, images: torch.Tensor, context: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Logit maps ``[n, 1, H, W]`` of some images of a group given the group's consensus."""
    maps = []
    for part in _parts(images, cfg):
        features = model.bb(part)
        maps.append(model.decode(features, features[3] * context, part.shape[-2:]))
    return torch.cat(maps)


def adapt_state_dict(state: dict) -> dict:
    """Accept the release's bare state dict (also wrapped as ``{"state_dict": ...}`` or with ``module.``)."""
    state = state.get("state_dict", state)
    return {key.removeprefix("module."): value for key, value in state.items()}
