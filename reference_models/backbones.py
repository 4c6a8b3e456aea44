"""VGG16/VGG19 convolutional feature extractors in plain torch, loading torchvision's ImageNet weights.

Two layouts of the same layers:

* ``VGGFeatures``: torchvision's ``vgg*().features`` (keys ``N.weight``; ``features.N.weight`` inside a model
  that stores it as ``features``), pool5 included. Used by RCGS.
* ``VGGBlocks``: GCoNet's ``VGG_Backbone`` -- blocks ``conv1..conv5`` with named layers
  (``conv5.conv5_3.weight``), each block's max-pool at its front, pool5 never applied.
* ``VGGStages``: GCoNet+'s ``bb`` -- torchvision's ``features`` cut at its pools into ``conv1..conv5``
  (each pool at the front of the next stage, pool5 dropped), layers keeping torchvision's indices
  (``conv2.7.weight``). With ``vgg16_bn`` (torchvision's ``vgg16_bn().features``) every conv has its BN.

Weights are torchvision state dicts (``vgg16-397923af.pth``, ``vgg16_bn-6c64b313.pth``, ``vgg19-dcbb9e9d.pth``;
``classifier.*`` ignored), found in this order: ``--backbone-weights PATH`` (recipe key ``backbone_weights``),
``$COSALBENCH_VGG16`` / ``$COSALBENCH_VGG16_BN`` / ``$COSALBENCH_VGG19``, ``$TORCH_HOME/hub/checkpoints/<file>`` (``TORCH_HOME`` defaults to ``~/.cache/torch``).
Nothing is ever downloaded. With ``pretrained: false`` (``--no-pretrained``) the backbone is randomly
initialised and every run output records ``"backbone": "random-init"``.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cosalbench.errors import CosalbenchError, exception_summary

# convolutions per block
ARCHS: dict[str, tuple[int, ...]] = {
    "vgg16": (2, 2, 3, 3, 3),
    "vgg16_bn": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
WEIGHT_FILES = {
    "vgg16": "vgg16-397923af.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
}
WEIGHT_ENV = {"vgg16": "COSALBENCH_VGG16", "vgg16_bn": "COSALBENCH_VGG16_BN", "vgg19": "COSALBENCH_VGG19"}
DOWNLOAD_URL = "https://download.pytorch.org/models/{file}"
RANDOM_INIT = "random-init"
BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def _check_arch(arch: str) -> tuple[int, ...]:
    if arch not in ARCHS:
        raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {sorted(ARCHS)}")
    return ARCHS[arch]


def _reset(module: nn.Module) -> None:
    """torchvision's VGG init: Kaiming-normal (fan_out, relu) conv weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def conv_names(arch: str) -> list[str]:
    """Names ``conv{block}_{index}`` of the convolutions in forward order."""
    return [f"conv{b + 1}_{j + 1}" for b, n in enumerate(_check_arch(arch)) for j in range(n)]


def has_batch_norm(arch: str) -> bool:
    """Whether ``arch`` is a ``*_bn`` variant (a BatchNorm after every convolution)."""
    return arch.endswith("_bn")


def torchvision_conv_indices(arch: str) -> list[int]:
    """Indices of the convolutions inside torchvision's ``features`` (conv[, bn], relu; one pool per block)."""
    indices, position = [], 0
    per_conv = 3 if has_batch_norm(arch) else 2
    for n in _check_arch(arch):
        for _ in range(n):
            indices.append(position)
            position += per_conv
        position += 1
    return indices


class VGGFeatures(nn.Sequential):
    """torchvision's ``vgg16().features`` / ``vgg16_bn().features`` / ``vgg19().features``; ``init`` says
    where its weights came from."""

    def __init__(self, arch: str) -> None:
        layers: list[nn.Module] = []
        channels = 3
        for out, n in zip(BLOCK_CHANNELS, _check_arch(arch), strict=True):
            for _ in range(n):
                layers.append(nn.Conv2d(channels, out, 3, padding=1))
                if has_batch_norm(arch):
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                channels = out
            layers.append(nn.MaxPool2d(2, 2))
        super().__init__(*layers)
        self.arch = arch
        self.init = RANDOM_INIT
        _reset(self)

    def __getitem__(self, index: int | slice) -> nn.Module:
        """A layer, or a plain ``nn.Sequential`` of the sliced layers (sharing their parameters)."""
        if isinstance(index, slice):
            return nn.Sequential(*list(self)[index])
        return super().__getitem__(index)

    def load_torchvision(self, state: dict[str, torch.Tensor], source: Path) -> None:
        """Load ``features.*`` tensors of a torchvision state dict (other keys ignored)."""
        _load_checked(self, {key: state.get(f"features.{key}") for key in _loadable_keys(self)}, source)
        self.init = f"imagenet:{source.name}"


class VGGStages(nn.Module):
    """GCoNet+'s backbone ``bb``: torchvision's VGG ``features`` sliced into stages ``conv1..conv5``.

    Stage k+1 starts with pool k; pool5 is dropped. The layers keep their torchvision indices as names
    (``conv1.0``, ``conv2.7``, ...), which is what slicing an ``nn.Sequential`` does in the release.
    ``forward`` returns the stage outputs x1..x5 at strides 1, 2, 4, 8, 16.
    """

    def __init__(self, arch: str = "vgg16_bn") -> None:
        super().__init__()
        self.arch = arch
        features = VGGFeatures(arch)
        pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
        for stage, (start, end) in enumerate(zip([0, *pools[:-1]], pools, strict=True), start=1):
            layers = OrderedDict((str(i), features[i]) for i in range(start, end))
            self.add_module(f"conv{stage}", nn.Sequential(layers))
        self.init = RANDOM_INIT

    def stages(self) -> tuple[nn.Sequential, ...]:
        """The five stages in forward order."""
        return (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = []
        for stage in self.stages():
            x = stage(x)
            outputs.append(x)
        return tuple(outputs)

    def load_torchvision(self, state: dict[str, torch.Tensor], source: Path) -> None:
        """Load a torchvision state dict: ``features.N.*`` goes to ``convK.N.*``."""
        mapped = {key: state.get("features." + key.split(".", 1)[1]) for key in _loadable_keys(self)}
        _load_checked(self, mapped, source)
        self.init = f"imagenet:{source.name}"


def _loadable_keys(module: nn.Module) -> list[str]:
    """State-dict keys a torchvision file must provide (BN's ``num_batches_tracked`` is optional there)."""
    return [key for key in module.state_dict() if not key.endswith("num_batches_tracked")]


class VGGBlocks(nn.Module):
    """GCoNet's VGG backbone: ``conv1..conv5`` blocks (pool first from conv2 on); forward returns x1..x5."""

    def __init__(self, arch: str = "vgg16") -> None:
        super().__init__()
        if has_batch_norm(arch):
            raise ValueError(f"GCoNet's VGG blocks have no BatchNorm variant, got {arch!r}")
        self.arch = arch
        channels = 3
        for block, (out, n) in enumerate(zip(BLOCK_CHANNELS, _check_arch(arch), strict=True), start=1):
            layers = nn.Sequential()
            if block > 1:
                layers.add_module(f"pool{block - 1}", nn.MaxPool2d(2, 2))
            for j in range(1, n + 1):
                layers.add_module(f"conv{block}_{j}", nn.Conv2d(channels, out, 3, padding=1))
                layers.add_module(f"relu{block}_{j}", nn.ReLU(inplace=True))
                channels = out
            self.add_module(f"conv{block}", layers)
        self.init = RANDOM_INIT
        _reset(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Block outputs (x1, x2, x3, x4, x5) at strides 1, 2, 4, 8, 16."""
        outputs = []
        for block in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = block(x)
            outputs.append(x)
        return tuple(outputs)

    def load_torchvision(self, state: dict[str, torch.Tensor], source: Path) -> None:
        """Load a torchvision state dict by mapping ``features.N`` onto ``convB.convB_J``."""
        mapped = {}
        for name, index in zip(conv_names(self.arch), torchvision_conv_indices(self.arch), strict=True):
            block = name.split("_")[0]
            for kind in ("weight", "bias"):
                mapped[f"{block}.{name}.{kind}"] = state.get(f"features.{index}.{kind}")
        _load_checked(self, mapped, source)
        self.init = f"imagenet:{source.name}"


def _load_checked(module: nn.Module, state: dict[str, torch.Tensor | None], source: Path) -> None:
    """Copy ``state`` into ``module`` after checking that every tensor is present with the right shape."""
    own = module.state_dict()
    for key, value in state.items():
        if value is None:
            raise CosalbenchError(
                source, f"not a torchvision {getattr(module, 'arch', 'VGG')} state dict (no tensor for {key})"
            )
        if tuple(value.shape) != tuple(own[key].shape):
            raise CosalbenchError(
                source, f"tensor for {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}"
            )
    module.load_state_dict(state, strict=True)


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch`` (torch.hub's rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "torch"


def resolve_weights(arch: str, explicit: str | Path | None = None) -> Path:
    """The ImageNet weight file for ``arch``: explicit path, then the env var, then the torch hub cache.

    Raises CosalbenchError naming every place looked at and how to get the file.
    """
    _check_arch(arch)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CosalbenchError(path, "backbone weight file not found", "check --backbone-weights")
        return path
    env = WEIGHT_ENV[arch]
    if os.environ.get(env):
        path = Path(os.environ[env]).expanduser()
        if not path.is_file():
            raise CosalbenchError(path, f"${env} points to a missing file", f"fix or unset ${env}")
        return path
    cached = torch_home() / "hub" / "checkpoints" / WEIGHT_FILES[arch]
    if cached.is_file():
        return cached
    raise CosalbenchError(
        cached,
        f"no ImageNet weights for {arch} (looked at --backbone-weights, ${env} and this torch hub path)",
        f"download {DOWNLOAD_URL.format(file=WEIGHT_FILES[arch])} on a machine with internet and put it at "
        f"{cached}, or pass --backbone-weights PATH / set ${env}; or train from scratch with --no-pretrained",
    )


def _load_failure(exc: BaseException) -> str:
    """Why ``torch.load`` failed, in one short line: its first sentence and the unpickler's own reason."""
    summary = exception_summary(exc)
    inner = exc.__context__
    return f"{summary}: {exception_summary(inner)}" if inner is not None and str(inner) else summary


def load_torch_mapping(path: Path, what: str) -> dict[str, Any]:
    """Load a ``.pth`` file holding a mapping (``what``: "state dict", "checkpoint") on the CPU, with
    ``weights_only`` unpickling; a missing, corrupt or non-mapping file raises CosalbenchError."""
    try:
        with warnings.catch_warnings():  # a damaged file's unpickler warnings would split the one error line
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure is a bad file for the user
        raise CosalbenchError(
            path,
            f"cannot read as a torch {what} ({_load_failure(exc)})",
            "the file is truncated, corrupt or not a torch .pth file",
        ) from exc
    if not isinstance(payload, dict):
        raise CosalbenchError(path, f"not a {what} (expected a mapping, got {type(payload).__name__})")
    return payload


def _initialise(module: VGGFeatures | VGGBlocks | VGGStages, cfg: dict) -> None:
    """Load ImageNet weights as the recipe asks (``pretrained``, ``backbone_weights``)."""
    if cfg.get("pretrained", True):
        path = resolve_weights(module.arch, cfg.get("backbone_weights"))
        module.load_torchvision(load_torch_mapping(path, "state dict"), path)


def vgg_features(arch: str, cfg: dict) -> VGGFeatures:
    """torchvision-layout VGG ``features`` initialised as the recipe asks."""
    module = VGGFeatures(arch)
    _initialise(module, cfg)
    return module


def vgg16_features(cfg: dict) -> VGGFeatures:
    """torchvision ``vgg16().features`` initialised as the recipe asks."""
    return vgg_features("vgg16", cfg)


def vgg19_features(cfg: dict) -> VGGFeatures:
    """torchvision ``vgg19().features`` initialised as the recipe asks."""
    return vgg_features("vgg19", cfg)


def vgg_blocks(arch: str, cfg: dict) -> VGGBlocks:
    """GCoNet-layout VGG blocks initialised as the recipe asks."""
    module = VGGBlocks(arch)
    _initialise(module, cfg)
    return module


def vgg_stages(arch: str, cfg: dict) -> VGGStages:
    """GCoNet+-layout VGG stages initialised as the recipe asks."""
    module = VGGStages(arch)
    _initialise(module, cfg)
    return module


def backbone_init(model: nn.Module) -> str:
    """Where the backbone of ``model`` got its weights: ``imagenet:<file>`` or ``random-init``."""
    for module in model.modules():
        if isinstance(module, VGGFeatures | VGGBlocks | VGGStages):
            return module.init
    return RANDOM_INIT
