"""The recipe schema: every recipe key's type, range and default in one table, and its validation.

A :class:`Field` describes one key. :data:`TRAINER_KEYS` holds the keys every model shares (data,
schedule, optimiser, run control); :data:`MODEL_KEYS` one section per model; a model module may add
or refine its own keys with a module-level ``RECIPE_KEYS: dict[str, Field]`` table (see
:func:`keys_for`). :func:`validate` turns a recipe mapping into the resolved one: defaults filled in,
values coerced to their type, and every unknown key or bad value refused with a one-line
:class:`~cosalbench.errors.CosalbenchError` naming the key, the value and what was expected
(``unknown recipe key 'epoch' (did you mean 'epochs'?)``).
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.protocols import PROTOCOLS

VALIDATION_METRICS = ("sm", "maxfm", "meanfm", "maxem", "meanem", "mae")
KINDS = ("int", "float", "bool", "str", "choice", "floats", "strs", "section")


@dataclass(frozen=True)
class Field:
    """One recipe key.

    ``kind``: ``int``, ``float``, ``bool``, ``str``, ``choice`` (one of ``choices``), ``floats`` /
    ``strs`` (a list; ``length`` fixes its size), or ``section`` (a nested mapping described by
    ``fields``). ``low``/``high`` bound numbers (and every item of ``floats``); ``low_open`` makes
    the lower bound exclusive. ``nullable`` allows ``null``; ``literals`` lists extra accepted
    strings (``num_classes: auto``).
    """

    kind: str
    default: Any = None
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    literals: tuple[str, ...] = ()
    length: int | None = None
    fields: Mapping[str, Field] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}; use one of {', '.join(KINDS)}")

    def expected(self) -> str:
        """What this key accepts, in words (the hint of a refusal)."""
        if self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "section":
            text = "a mapping with keys " + ", ".join(self.fields)
        elif self.kind in ("floats", "strs"):
            item = "numbers" if self.kind == "floats" else "strings"
            size = f"{self.length} " if self.length else ""
            text = f"a list of {size}{item}{self._range()}"
        else:
            text = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[
                self.kind
            ] + self._range()
        for literal in self.literals:
            text += f" or {literal!r}"
        return text + (" or null" if self.nullable else "")

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            return f" in {left}{_number(self.low)}, {_number(self.high)}]"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f" <= {_number(self.high)}"
        return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


# --- the keys ------------------------------------------------------------------------------------------

SYNTHETIC_KEYS: dict[str, Field] = {
    "n_groups": Field("int", 8, "groups of the generated training set", low=2),
    "images_per_group": Field("int", 8, "images per group", low=1),
    "height": Field("int", 96, "image height in pixels", low=8),
    "width": Field("int", 96, "image width in pixels", low=8),
    "seed": Field("int", 0, "generator seed", low=0),
    "max_distractors": Field("int", 3, "distractor shapes per image (at most)", low=0),
}

VALIDATION_KEYS: dict[str, Field] = {
    "groups": Field(
        "float",
        0.1,
        "training groups held out: a fraction below 1, a count from 1, or 0 (off: final.pth is the result)",
        low=0.0,
    ),
    "seed": Field("int", 0, "seed of the choice of held-out groups (and of their scored images)", low=0),
    "every": Field(
        "int",
        None,
        "evaluate every this many steps (null: at every epoch's end); always at the last",
        low=1,
        nullable=True,
    ),
    "metric": Field(
        "choice",
        "sm",
        "the image-mean measure best.pth maximises (mae: minimises)",
        choices=VALIDATION_METRICS,
    ),
    "protocol": Field(
        "choice", "pysodmetrics", "metric protocol of the validation scores", choices=PROTOCOLS
    ),
    "images_per_group": Field(
        "int",
        32,
        "images scored per held-out group (null: all), drawn once with the seed",
        low=1,
        nullable=True,
    ),
}

TRAINER_KEYS: dict[str, Field] = {
    "model": Field("str", None, "model name (set by the command)", nullable=True),
    "train_set": Field("str", "DUTS_class", "training set name, or 'synthetic'"),
    "data_root": Field("str", None, "canonical data root (else $COSALBENCH_DATA, ./data)", nullable=True),
    "synthetic": Field("section", None, "the generated set of train_set: synthetic", fields=SYNTHETIC_KEYS),
    "validation": Field(
        "section",
        None,
        "the validation split held out from the training groups that chooses best.pth",
        fields=VALIDATION_KEYS,
    ),
    "size": Field("int", 224, "square training input size in pixels", low=8),
    "seed": Field("int", 0, "seed of every random draw of the run", low=0),
    "epochs": Field("int", 1, "epochs to train (null: max_steps alone)", low=1, nullable=True),
    "max_steps": Field("int", None, "stop after this many optimizer steps in total", low=1, nullable=True),
    "optimizer": Field("choice", "adam", "optimiser", choices=("adam", "adamw", "sgd")),
    "lr": Field("float", 1e-4, "learning rate of the head", low=0.0, low_open=True),
    "betas": Field("floats", [0.9, 0.999], "Adam betas", low=0.0, high=1.0, length=2),
    "momentum": Field("float", 0.9, "SGD momentum", low=0.0, high=1.0),
    "weight_decay": Field("float", 0.0, "weight decay", low=0.0),
    "backbone_lr_mult": Field("float", 1.0, "backbone lr = lr x this", low=0.0),
    "lr_step": Field("int", None, "multiply lr by lr_gamma every lr_step units", low=1, nullable=True),
    "lr_step_unit": Field("choice", "epoch", "unit of lr_step", choices=("epoch", "step")),
    "lr_gamma": Field("float", 0.1, "lr decay factor", low=0.0, low_open=True, high=1.0),
    "grad_clip": Field(
        "float", None, "clip the gradient norm to this", low=0.0, low_open=True, nullable=True
    ),
    "amp": Field("choice", "bf16", "autocast on CUDA", choices=("bf16", "none")),
    "compile": Field("bool", False, "torch.compile on CUDA"),
    "deterministic": Field("bool", False, "deterministic cuDNN / torch algorithms"),
    "device": Field("str", "auto", "cpu, cuda, cuda:N or auto"),
    "pretrained": Field("bool", True, "ImageNet backbone weights (false: random init)"),
    "backbone_weights": Field("str", None, "torchvision-format backbone .pth file", nullable=True),
    "checkpoint_every": Field("int", None, "also checkpoint every this many steps", low=1, nullable=True),
    "log_every": Field("int", 1, "write a log.jsonl record every this many steps", low=1),
    "augment": Field("bool", True, "random flips and rotations"),
    "flip_p": Field("float", 0.5, "horizontal flip probability", low=0.0, high=1.0),
    "max_angle": Field(
        "float", 0.0, "rotation drawn uniformly from (-max_angle, max_angle) degrees", low=0.0, high=180.0
    ),
    "cache_dir": Field(
        "str",
        None,
        "decoded-image cache folder (null: $COSALBENCH_CACHE or ~/.cache/cosalbench)",
        nullable=True,
    ),
    "preload_workers": Field("int", 4, "threads decoding images into the cache", low=1),
    "loader_workers": Field("int", 2, "worker processes assembling batches (0: in the trainer)", low=0),
    "prefetch": Field("int", 2, "batches each loader worker prepares ahead", low=0),
    "ddp_leftover": Field(
        "choice",
        "pad",
        "an epoch's batches that do not fill a round of world-size: pad (repeat the epoch's first) or drop",
        choices=("pad", "drop"),
    ),
    "predict_chunk": Field(
        "int", None, "images per forward pass at test time (null: whole group)", low=1, nullable=True
    ),
}

GCONET_KEYS: dict[str, Field] = {
    "num_classes": Field(
        "int", 291, "classifier width ('auto': number of training groups)", low=2, literals=("auto",)
    ),
    "group_size": Field("int", 16, "N images of each of the two groups per step", low=1),
    "trainable_backbone": Field("strs", ["conv5.conv5_3"], "backbone parameter prefixes that train"),
    "loss_weights": Field(
        "section",
        None,
        "weights of the loss terms",
        fields={
            "iou": Field("float", 1.0, low=0.0),
            "cls": Field("float", 3.0, low=0.0),
            "focal": Field("float", 250.0, low=0.0),
        },
    ),
}

RCGS_KEYS: dict[str, Field] = {
    "subgroup_size": Field("int", 5, "images of one group per sub-group", low=1),
    "subgroups_per_batch": Field("int", 56, "sub-groups per step", low=1),
    "categories": Field("strs", [], "co-category vocabulary ([]: from the training manifest)"),
    "group_pooling": Field("choice", "hlrbp", "group pooling", choices=("hlrbp", "ap")),
    "fusion": Field(
        "choice",
        "multi",
        "where the group vector is fused: multi (pool3, pool4, pool5) or single-g5 (Table 2: G5 only)",
        choices=("multi", "single-g5"),
    ),
    "group_dim": Field(
        "int", 512, "D: size of the group semantic vector (classifier W is D x L, eq. 7)", low=1
    ),
    "reduce_channels": Field("int", 256, "1x1 reduction of pool5 before the image LRBP", low=1),
    "embed_dim": Field("int", 512, "image descriptor size", low=1),
    "lrbp_rank": Field("int", 8, "rank r of the LRBP layers", low=2),
    "fusion_channels": Field("int", 256, "width of the top-down path", low=1),
    "category_weight": Field("float", 1.0, "lambda of the co-category loss", low=0.0),
}

GCONET_PLUS_KEYS: dict[str, Field] = {
    "num_classes": Field(
        "int", 291, "classifier width ('auto': largest group count)", low=2, literals=("auto",)
    ),
    "group_size": Field(
        "int", 26, "N = min(N, |g1|, |g2|) images of each of the two groups per batch", low=1
    ),
    "joint_train_set": Field(
        "str", "COCO-SEG", "second training set whose batch loss each step adds (null: none)", nullable=True
    ),
    "backbone": Field("choice", "vgg16_bn", "backbone architecture", choices=("vgg16_bn",)),
    "rotate_p": Field("float", 0.2, "probability of a random rotation", low=0.0, high=1.0),
    "color_enhance": Field("bool", True, "random brightness, contrast, colour and sharpness"),
    "trainable_backbone": Field("strs", [], "backbone parameter prefixes that train ([]: frozen)"),
    "triplet_margin": Field("float", 0.1, "margin of the triplet loss", low=0.0),
    "loss_weights": Field(
        "section",
        None,
        "weights of the loss terms",
        fields={
            "bce": Field("float", 120.0, low=0.0),
            "iou": Field("float", 2.0, low=0.0),
            "triplet": Field("float", 12.0, low=0.0),
            "cls": Field("float", 3.0, low=0.0),
            "contrast": Field("float", 250.0, low=0.0),
            "cls_mask": Field("float", 10.0, low=0.0),
        },
    ),
}

# One section per model; a model module's own RECIPE_KEYS table is merged over its section.
MODEL_KEYS: dict[str, dict[str, Field]] = {
    "gconet": GCONET_KEYS,
    "gconet_plus": GCONET_PLUS_KEYS,
    "rcgs": RCGS_KEYS,
}


def keys_for(model: str, module: ModuleType | None = None) -> dict[str, Field]:
    """Every key a recipe of ``model`` may hold: trainer keys, the model's section, its module's ``RECIPE_KEYS``."""
    keys = {**TRAINER_KEYS, **MODEL_KEYS.get(model, {})}
    keys.update(getattr(module, "RECIPE_KEYS", {}) or {})
    return keys


def defaults(keys: Mapping[str, Field]) -> dict[str, Any]:
    """The default recipe of ``keys`` (sections filled with their own defaults)."""
    return {name: _default(spec) for name, spec in keys.items()}


def _default(spec: Field) -> Any:
    if spec.kind == "section":
        return defaults(spec.fields)
    return copy.deepcopy(spec.default)


# --- validation ------------------------------------------------------------------------------------------


def suggest(name: str, known: Any) -> str:
    """``did you mean 'epochs'?`` for the closest known key, else the list of known keys."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known keys: " + ", ".join(known)


def check_keys(
    recipe: Mapping[str, Any], keys: Mapping[str, Field], source: str | Path | None, prefix: str = ""
) -> None:
    """Refuse the first key of ``recipe`` (or of a nested section) that ``keys`` does not describe."""
    for name, value in recipe.items():
        dotted = f"{prefix}{name}"
        if name not in keys:
            raise CosalbenchError(source, f"unknown recipe key {dotted!r}", suggest(str(name), keys))
        spec = keys[name]
        if spec.kind == "section" and isinstance(value, Mapping):
            check_keys(value, spec.fields, source, f"{dotted}.")


def validate(
    recipe: Mapping[str, Any], keys: Mapping[str, Field], source: str | Path | None = None
) -> dict[str, Any]:
    """The recipe with every key checked and coerced, and the missing ones set to their defaults."""
    check_keys(recipe, keys, source)
    return {name: _resolve(recipe, name, spec, source, "") for name, spec in keys.items()}


def _resolve(
    recipe: Mapping[str, Any], name: str, spec: Field, source: str | Path | None, prefix: str
) -> Any:
    if name not in recipe:
        return _default(spec)
    return coerce(recipe[name], spec, f"{prefix}{name}", source)


def coerce(value: Any, spec: Field, key: str, source: str | Path | None = None) -> Any:
    """``value`` as key ``key`` requires it, or a CosalbenchError naming the key, the value and the type."""
    if value is None:
        if spec.nullable or spec.kind == "section":
            return _default(spec) if spec.kind == "section" else None
        raise _bad(value, spec, key, source)
    if isinstance(value, str) and value in spec.literals:
        return value
    kind = spec.kind
    if kind == "section":
        if not isinstance(value, Mapping):
            raise _bad(value, spec, key, source)
        check_keys(value, spec.fields, source, f"{key}.")
        return {name: _resolve(value, name, sub, source, f"{key}.") for name, sub in spec.fields.items()}
    if kind in ("floats", "strs"):
        if not isinstance(value, list | tuple) or (spec.length is not None and len(value) != spec.length):
            raise _bad(value, spec, key, source)
        item_kind = "float" if kind == "floats" else "str"
        item = Field(item_kind, low=spec.low, high=spec.high, low_open=spec.low_open)
        try:
            return [coerce(entry, item, key, source) for entry in value]
        except CosalbenchError:
            raise _bad(value, spec, key, source) from None
    converted = _scalar(value, kind, spec)
    if converted is None:
        raise _bad(value, spec, key, source)
    return converted


def _scalar(value: Any, kind: str, spec: Field) -> Any:
    """``value`` converted to a scalar of ``kind`` within range, or None when it is not one."""
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind in ("str", "choice"):
        if not isinstance(value, str) or (kind == "choice" and value not in spec.choices):
            return None
        return value
    number = _as_number(value)
    if number is None or not math.isfinite(number):
        return None
    if kind == "int":
        if not float(number).is_integer():
            return None
        number = int(number)
    else:
        number = float(number)
    if spec.low is not None and (number < spec.low or (spec.low_open and number == spec.low)):
        return None
    if spec.high is not None and number > spec.high:
        return None
    return number


def _as_number(value: Any) -> float | int | None:
    """An int or float (YAML 1.1 reads ``1e-4`` as a string: such strings count as numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _bad(value: Any, spec: Field, key: str, source: str | Path | None) -> CosalbenchError:
    shown = "null" if value is None else repr(value)
    return CosalbenchError(source, f"recipe key {key!r}: bad value {shown}", f"expected {spec.expected()}")
