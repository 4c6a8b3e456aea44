"""GICD (Zhang et al., ECCV 2020): gradient-induced co-saliency detection.

A port of the official test code ``zzhanghub/gicd`` at commit b587591 (``models/GICD.py``, ``models/vgg.py``,
``dataset.py``, ``test.py``); the release has no training code, so this is a predict-only model (no
``plan_batches``/``training_loss``: ``train-reference gicd`` refuses it). Module and parameter names follow the
release: ``ginet.*`` is the released ``gicd_ginet.pth`` (GINet's bare state dict, 139.7 M values, its own VGG16
classifier included), ``co_classifier.*`` is torchvision's ImageNet ``vgg16`` (138.4 M values), which the release
builds with ``vgg16(pretrained=True)`` and does not store in its checkpoint (:func:`adapt_state_dict` adds it).

How one group of N images is predicted (shapes for 224 x 224):

1. Co-classification: the ImageNet VGG16 gives 1000 logits per image; their sum over the group, soft-maxed, is the
   group's "co-coding" c (a 1000-vector, the group context of chunked prediction).
2. Gradient attention per image: GINet's own VGG16 gives x1..x5 (64@224 .. 512@14) and, through its avgpool(7)
   and classifier, logits z(x5). The gradient g = d(c . z)/d x5 (autograd at test time), averaged over positions
   and ReLU'd, is a channel weight w in [0, 1] after min-max normalisation over the 512 channels (eps 1e-20).
   x5 * w is the weighted feature; its channel mean, ReLU'd and min-max normalised per image (eps 1e-6), is the
   CAM map (side output 0).
3. Decoder: toplayer (1x1 convs) on x5 * w, then four levels k = 4..1: p = enlayer_k(up(p) + latlayer_k(x_k *
   up(pred))), pred = dslayer_k(p) (sigmoid), where pred starts as the CAM. The last pred (at the input size)
   is the saliency map.

Deviations from the release (none changes an output beyond rounding: float64 maps are identical, float32 ones
within 1.0e-5; see docs/models.md):

* A group goes through GINet as one batch instead of one image at a time; the gradient and both min-max
  normalisations stay per image (the release's are over its batch of one), and no layer mixes images.
* The gradient comes from ``torch.autograd.grad`` on a detached copy of x5 instead of ``backward()`` with a
  hook: the same values, but the parameters' ``.grad`` no longer accumulate over the test set and no graph is
  kept for conv5. Gradients are enabled only for that step, so ``predict_group`` works under ``torch.no_grad()``.
* Under reduced-precision autocast the co-coding sum and the gradient normalisation run in float32 (the release
  runs in fp32 only; its eps 1e-20 would vanish in fp16).
* The co-coding is computed ``predict_chunk`` images at a time when a group is chunked; the logits are summed in
  image order as the release's loop does, so chunking does not change it.
* Group order is sorted file names, not ``os.listdir`` order (only the co-coding's summation order, ~1e-16).
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from cosalbench.errors import CosalbenchError
from reference_models.backbones import (
    DOWNLOAD_URL,
    WEIGHT_ENV,
    WEIGHT_FILES,
    VGGBlocks,
    VGGFeatures,
    load_torch_mapping,
    resolve_weights,
)
from reference_models.gconet import _parts, add_decoder_layers, decoder_levels, upsample
from reference_models.gconet_plus import full_precision

DEFAULT_RECIPE = "gicd.yaml"
CHECKPOINT_HINT = (
    "download the released gicd_ginet.pth (Google Drive or Baidu, linked from the zzhanghub/gicd README) "
    "and pass its path as --checkpoint"
)
CHANNELS = 512  # conv5 channels
CHANNEL_EPS = 1e-20  # the release's eps of the channel-weight normalisation
CAM_EPS = 1e-6  # ... and of the CAM normalisation
CO_CLASSIFIER = "co_classifier."
GINET = "ginet."
GINET_MARKERS = ("toplayer.0.weight", "backbone.classifier.6.weight", "dslayer1.predlayer.0.weight")


def vgg_classifier_head() -> nn.Sequential:
    """torchvision VGG's classifier: Linear(25088, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, Dropout,
    Linear(4096, 1000) (keys ``0``, ``3``, ``6``)."""
    return nn.Sequential(
        nn.Linear(CHANNELS * 7 * 7, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(4096, 1000),
    )


class CoClassifier(nn.Module):
    """torchvision's ``vgg16()``: features (pool5 included), avgpool to 7 x 7, classifier -> ImageNet logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = VGGFeatures("vgg16")
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = vgg_classifier_head()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(images)), 1))


class ClassifyingVGGBlocks(VGGBlocks):
    """The release's ``VGG_Backbone``: GCoNet's VGG16 blocks conv1..conv5 plus an ImageNet-style head on x5."""

    def __init__(self) -> None:
        super().__init__("vgg16")
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = vgg_classifier_head()

    def classify(self, x5: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, 1000]`` of conv5 features."""
        return self.classifier(torch.flatten(self.avgpool(x5), 1))


def _per_image_min_max(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum and maximum of each image's values, shaped to broadcast against ``x``."""
    dims = tuple(range(1, x.ndim))
    return x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)


class GINet(nn.Module):
    """The release's ``GINet``: VGG16 with its classifier, gradient attention on x5 and an FPN decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ClassifyingVGGBlocks()
        add_decoder_layers(self)  # toplayer, latlayer4..1, enlayer4..1, dslayer4..1

    def class_gradient(self, x5: torch.Tensor, co_coding: torch.Tensor) -> torch.Tensor:
        """d(sum of co_coding . logits(x5))/d x5: each image's gradient (no layer mixes images)."""
        with torch.enable_grad():
            leaf = x5.detach().requires_grad_()
            # the classifier sees a view, not the leaf itself: backward hooks on module inputs (those of
            # torch.utils.flop_counter's module tracker) refuse leaves inside autograd.grad
            similarity = (co_coding * self.backbone.classify(leaf.view_as(leaf))).sum()
            (gradient,) = torch.autograd.grad(similarity, leaf)
        return gradient

    def gradient_attention(
        self, x5: torch.Tensor, co_coding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x5 weighted by the normalised channel gradients, the CAM ``[N, 1, h, w]`` in [0, 1])."""
        gradient = full_precision(self.class_gradient(x5, co_coding))
        weight = F.relu(F.adaptive_avg_pool2d(gradient, (1, 1)))
        low, high = _per_image_min_max(weight)
        weight = (weight - low) / (high - low + CHANNEL_EPS)
        weighted = x5 * weight
        cam = torch.relu(weighted.mean(dim=1, keepdim=True))
        cam = cam - _per_image_min_max(cam)[0]
        cam = cam / (_per_image_min_max(cam)[1] + CAM_EPS)
        return weighted, cam.clamp(0, 1)

    def forward(self, images: torch.Tensor, co_coding: torch.Tensor) -> list[torch.Tensor]:
        """Side maps ``[cam, pred4, pred3, pred2, pred1]`` at the input size; pred1 is the saliency map."""
        size = images.shape[-2:]
        with torch.no_grad():
            features = self.backbone(images)
        weighted, pred = self.gradient_attention(features[4], co_coding)
        with torch.no_grad():
            maps = [upsample(pred, size)]
            p = self.toplayer(weighted)
            for lateral, latlayer, enlayer, dslayer in decoder_levels(self, features):
                at = lateral.shape[-2:]
                p = enlayer(upsample(p, at) + latlayer(lateral * upsample(pred, at)))
                pred = dslayer(p)
                maps.append(upsample(pred, size))
        return maps


class GICD(nn.Module):
    """The release's ``GICD``: the ImageNet co-classifier and GINet. ``forward`` takes one group ``[N, 3, H, W]``."""

    def __init__(self) -> None:
        super().__init__()
        self.co_classifier = CoClassifier()
        self.ginet = GINet()

    @torch.no_grad()
    def co_coding(self, parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """softmax(sum of the co-classifier's logits over the group) ``[1, 1000]``, summed in image order."""
        total = None
        for part in parts:
            for logits in full_precision(self.co_classifier(part)):
                total = logits if total is None else total + logits
        return F.softmax(total[None], dim=1)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Side maps ``[cam, pred4, pred3, pred2, pred1]`` of every image of the group."""
        return self.ginet(images, self.co_coding((images,)))


def build_model(cfg: dict) -> GICD:
    """GICD with random weights (``cosalbench predict`` loads the released ones; see :func:`adapt_state_dict`)."""
    return GICD()


@torch.no_grad()
def group_context(model: GICD, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """The group's co-coding ``[1, 1000]``, the co-classifier running ``predict_chunk`` images at a time."""
    return model.co_coding(_parts(images, cfg))


@torch.no_grad()
def decode(model: GICD, images: torch.Tensor, context: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Final maps ``[n, 1, H, W]`` of some images of a group given the group's co-coding."""
    return torch.cat([model.ginet(part, context)[-1] for part in _parts(images, cfg)])


def predict_group(model: GICD, images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Final maps ``[N, 1, H, W]`` in (0, 1) of one whole group (the co-coding uses all N images)."""
    return decode(model, images, group_context(model, images, cfg), cfg)


def co_classifier_weights() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ``vgg16`` state dict ($COSALBENCH_VGG16, else the torch hub cache), prefixed
    ``co_classifier.``; a missing file or one of another shape is a one-line error saying what to get."""
    try:
        path = resolve_weights("vgg16")
    except CosalbenchError as exc:
        if os.environ.get(WEIGHT_ENV["vgg16"]):
            raise
        raise CosalbenchError(
            exc.path,
            "GICD's co-classifier is torchvision's ImageNet VGG16 (the release calls vgg16(pretrained=True)), "
            "not in its checkpoint, and no such file is here",
            f"download {DOWNLOAD_URL.format(file=WEIGHT_FILES['vgg16'])} and put it at this path, or set "
            f"${WEIGHT_ENV['vgg16']} to the file",
        ) from exc
    state = load_torch_mapping(path, "state dict")
    with torch.device("meta"):
        expected = CoClassifier().state_dict()
    for key, like in expected.items():
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(like.shape):
            found = "missing" if value is None else f"shape {tuple(getattr(value, 'shape', ()))}"
            raise CosalbenchError(
                path, f"not torchvision's vgg16 state dict ({key}: {found}, expected {tuple(like.shape)})"
            )
    return {CO_CLASSIFIER + key: state[key] for key in expected}


def adapt_state_dict(state: dict) -> dict:
    """Accept the release's ``gicd_ginet.pth`` (GINet's bare state dict, which ``test.py`` loads into
    ``model.ginet``), completed with the co-classifier's ImageNet weights; a whole ``GICD`` state dict
    (``co_classifier.*`` and ``ginet.*``) passes unchanged."""
    if any(key.startswith(CO_CLASSIFIER) for key in state) or not all(key in state for key in GINET_MARKERS):
        return state
    return {**co_classifier_weights(), **{GINET + key: value for key, value in state.items()}}
