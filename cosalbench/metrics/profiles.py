"""``report --profile``: the JSON ``cosalbench profile MODEL --json --out FILE`` writes, read and joined.

A profile document gives one model's cost on one device: parameters (all, and those the test-time
forward uses), FLOPs of one group and per image, latency and images/s. ``load_profiles`` reads and
validates them (one-line error naming the file); ``choose_profiles`` keeps one per model and refuses
FPS from different devices in one column; ``ProfileColumns`` turns them into the table's Params,
FLOPs and FPS columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.results_io import read_json

NUMBER = (int, float)
# key -> JSON type every profile document has (as reference_models.profile.profile_model returns it)
PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "device": str,
    "device_name": str,
    "dtype": str,
    "size": int,
    "group_size": int,
    "params": int,
    "params_inference": int,
    "flops_per_group": int,
    "gflops_per_image": NUMBER,
    "images_per_s": NUMBER,
    "latency_ms": dict,
}
SIGNATURE_KEYS = ("model", "device", "params_inference", "flops_per_group", "images_per_s")
POSITIVE_KEYS = ("size", "group_size", "params", "params_inference", "flops_per_group", "images_per_s")
HINT = "pass JSON files written by 'cosalbench profile MODEL --json --out FILE'"
# (CSV field, header label, how a profile gives the value, decimals)
COLUMNS = (
    ("params_m", "Params (M)", lambda p: p["params_inference"] / 1e6, 2),
    ("gflops_per_image", "FLOPs (G/image)", lambda p: p["gflops_per_image"], 2),
    ("images_per_s", "FPS (images/s)", lambda p: p["images_per_s"], 1),
)
SMALL_DIGITS = 3  # significant digits of a value below 1 (a CPU's 0.142 images/s must not print as 0.1)


def is_profile_document(obj: Any) -> bool:
    """True when ``obj`` looks like a profile document (it may still be malformed)."""
    return isinstance(obj, dict) and all(key in obj for key in SIGNATURE_KEYS)


def validate_profile(doc: Any, path: str | Path) -> dict:
    """Check the keys, types and internal consistency of a profile document; return it."""
    if not is_profile_document(doc):
        raise CosalbenchError(path, "not a cosalbench profile document", HINT)
    for key, kind in PROFILE_KEYS.items():
        if key not in doc:
            raise CosalbenchError(path, f"profile document lacks '{key}'", HINT)
        value = doc[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CosalbenchError(path, f"profile '{key}' has the wrong type ({type(value).__name__})", HINT)
        if isinstance(value, float) and not math.isfinite(value):
            raise CosalbenchError(path, f"profile '{key}' is {value}, not a finite number")
    for key in POSITIVE_KEYS:
        if doc[key] <= 0:
            raise CosalbenchError(path, f"profile '{key}' is {doc[key]}, not positive")
    if doc["params_inference"] > doc["params"]:
        raise CosalbenchError(path, "profile 'params_inference' exceeds 'params'")
    per_image = doc["flops_per_group"] / doc["group_size"] / 1e9
    if not math.isclose(doc["gflops_per_image"], per_image, rel_tol=1e-6):
        raise CosalbenchError(
            path,
            f"profile 'gflops_per_image' {doc['gflops_per_image']} is not flops_per_group / group_size "
            f"({per_image:.6g})",
        )
    median = doc["latency_ms"].get("median")
    if not isinstance(median, NUMBER) or isinstance(median, bool) or median <= 0:
        raise CosalbenchError(path, f"profile 'latency_ms.median' is {median!r}, not a positive number")
    per_second = doc["group_size"] / (median / 1e3)
    if not math.isclose(doc["images_per_s"], per_second, rel_tol=1e-6):
        raise CosalbenchError(
            path,
            f"profile 'images_per_s' {doc['images_per_s']} is not group_size / median latency ({per_second:.6g})",
        )
    return doc


def _profiles_in_folder(folder: Path) -> list[dict]:
    found = []
    for path in sorted(folder.rglob("*.json")):
        if not path.is_file():
            raise CosalbenchError(path, "is not a regular file", "a profile folder holds profile JSON files")
        obj = read_json(path)
        if is_profile_document(obj):
            found.append({**validate_profile(obj, path), "_path": str(path)})
    if not found:
        raise CosalbenchError(folder, "folder holds no cosalbench profile document (*.json)", HINT)
    return found


def load_profiles(paths: Iterable[str | Path]) -> list[dict]:
    """Profile documents from files and folders (searched recursively; other JSON in folders is
    ignored), each read once; every returned dict gains ``"_path"``."""
    profiles, seen = [], set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = _profiles_in_folder(path)
        elif path.is_file():
            found = [{**validate_profile(read_json(path), path), "_path": str(path)}]
        else:
            raise CosalbenchError(path, "no such file or folder", HINT)
        for profile in found:
            key = Path(profile["_path"]).resolve()
            if key not in seen:
                seen.add(key)
                profiles.append(profile)
    return profiles


def device_label(profile: dict) -> str:
    """``cuda:0 (NVIDIA H200)``: the device a profile was measured on."""
    return f"{profile['device']} ({profile['device_name']})"


def _device_key(profile: dict) -> tuple[str, str]:
    """Profiles on ``cuda:0`` and ``cuda:1`` of one GPU type count as one device."""
    return profile["device"].split(":")[0], profile["device_name"]


def _on_device(profile: dict, device: str) -> bool:
    wanted = device.casefold()
    return wanted in {
        profile["device"].casefold(),
        profile["device"].split(":")[0].casefold(),
        profile["device_name"].casefold(),
    }


def choose_profiles(profiles: Sequence[dict], device: str | None = None) -> tuple[dict[str, dict], list[str]]:
    """One profile per model (key: the model name case-folded) and notes for stderr.

    ``device`` (a device such as ``cuda``/``cuda:0``/``cpu`` or a device name) keeps only the profiles
    measured there. Two profiles of one model, or profiles of different devices left in one table, are
    refused: FPS from different devices are not comparable.
    """
    notes = []
    if device is not None:
        kept = [p for p in profiles if _on_device(p, device)]
        if not kept:
            measured = ", ".join(sorted({device_label(p) for p in profiles}))
            raise CosalbenchError(
                None, f"no profile was measured on {device!r}", f"the profiles are from {measured}"
            )
        notes += [
            f"profile {p['_path']} ({p['model']} on {device_label(p)}) left out: not measured on {device}"
            for p in profiles
            if not _on_device(p, device)
        ]
        profiles = kept
    by_model: dict[str, dict] = {}
    for profile in profiles:
        key = profile["model"].casefold()
        first = by_model.get(key)
        if first is None:
            by_model[key] = profile
        elif _device_key(first) != _device_key(profile):
            raise CosalbenchError(
                profile["_path"],
                f"second profile of model {profile['model']!r}, on {device_label(profile)}; first: "
                f"{first['_path']} on {device_label(first)}",
                "choose the device with --profile-device",
            )
        else:
            raise CosalbenchError(
                profile["_path"],
                f"second profile of model {profile['model']!r} on {device_label(profile)}; first: {first['_path']}",
                "pass one profile per model and device",
            )
    devices = {_device_key(p): p for p in by_model.values()}
    if len(devices) > 1:
        examples = "; ".join(f"{device_label(p)}: {p['_path']}" for p in devices.values())
        raise CosalbenchError(
            None,
            f"profiles measured on different devices ({examples})",
            "FPS from different devices are not comparable: choose one with --profile-device",
        )
    return by_model, notes


@dataclass
class ProfileColumns:
    """The Params / FLOPs / FPS columns of a table: which profile each row gets, and the caption text."""

    profiles: dict[str, dict]  # model (case-folded) -> profile
    used: set[str] = field(default_factory=set)  # files of the profiles some row matched

    def match(self, names: Sequence[str]) -> dict | None:
        """The profile of the first of ``names`` (provenance.model, then the method) that has one."""
        for name in names:
            found = self.profiles.get(name.casefold())
            if found is not None:
                self.used.add(found["_path"])
                return found
        return None

    def unmatched_notes(self) -> list[str]:
        """One note per profile that no row matched."""
        return [
            f"profile {p['_path']} (model {p['model']!r}) matches no row of the table "
            "(rows match by provenance.model, else by method name, case-insensitively)"
            for p in self.profiles.values()
            if p["_path"] not in self.used
        ]

    def caption(self) -> str:
        """What the three columns mean and where they were measured."""
        profiles = list(self.profiles.values())
        first = profiles[0]
        settings = {_setting(p) for p in profiles}
        if len(settings) == 1:
            where = _setting(first)
        else:
            where = "; ".join(f"{p['model']}: {_setting(p)}" for p in profiles)
        return (
            "Params: parameters used at inference, in millions; FLOPs: GFLOPs per image (one group's "
            "torch.utils.flop_counter count / group size, a multiply-add counts 2); FPS: images/s from the "
            f"median latency of one group, measured on {device_label(first)} by 'cosalbench profile' ({where})."
        )


def _setting(profile: dict) -> str:
    return f"{profile['dtype']}, groups of {profile['group_size']} at {profile['size']}×{profile['size']}"


def column_values(profile: dict | None) -> list[tuple[str, str, str]]:
    """(CSV field, header label, display text) per column; text ``""`` when ``profile`` is None."""
    return [
        (name, label, "" if profile is None else _number(value(profile), digits))
        for name, label, value, digits in COLUMNS
    ]


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if value >= 1 else f"{value:#.{SMALL_DIGITS}g}"
