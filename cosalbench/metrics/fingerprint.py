"""Input fingerprints of result documents, so that a rerun rescores only what changed.

A fingerprint hashes everything a result depends on: the cosalbench version, the protocol and the
scoring options, the method and dataset names, the provenance of the maps' checkpoint when their
``prediction.json`` records one, and for every pair the GT and prediction paths with their sizes and
modification times (plus the list of missing predictions). It is stored beside the
result as ``<out>/<method>/<Dataset>.fingerprint.json``; a rerun whose fingerprint equals the stored
one, with the result files still there, reuses the result instead of decoding anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cosalbench import __version__, io


def _stat(path: Path, cache: dict[Path, str]) -> str:
    """``path|size|mtime_ns`` of one input file (cached: a GT is shared by every method)."""
    if path not in cache:
        info = os.stat(path)
        cache[path] = f"{os.path.abspath(path)}|{info.st_size}|{info.st_mtime_ns}"
    return cache[path]


def job_fingerprint(job: Any, options: Mapping[str, Any], cache: dict[Path, str]) -> str:
    """SHA-256 (hex) of a job's inputs (its pairs' files, missing keys) and the scoring ``options``."""
    digest = hashlib.sha256()
    header = {"cosalbench": __version__, "method": job.method, "dataset": job.dataset, **options}
    if getattr(job, "provenance", None) is not None:  # the maps' checkpoint (from their prediction.json)
        header["provenance"] = job.provenance
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for pair in job.pairs:
        line = f"\n{pair.group}/{pair.stem}\t{_stat(pair.gt, cache)}\t{_stat(pair.pred, cache)}"
        digest.update(line.encode())
    digest.update(("\nmissing\t" + "\t".join(job.missing)).encode())
    return digest.hexdigest()


def fingerprint_path(json_path: Path) -> Path:
    """``<out>/<method>/<Dataset>.fingerprint.json`` beside the result ``<Dataset>.json``."""
    return json_path.with_name(json_path.name[: -len(".json")] + ".fingerprint.json")


def stored_fingerprint(json_path: Path) -> str | None:
    """The fingerprint recorded beside a result, or None (absent or unreadable: rescore)."""
    try:
        record = json.loads(fingerprint_path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = record.get("fingerprint") if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def write_fingerprint(
    json_path: Path,
    fingerprint: str,
    options: Mapping[str, Any],
    n_pairs: int,
    place: Callable[[Path], Path] | None = None,
) -> Path:
    """Record ``fingerprint`` beside the result (atomically); return its final path.

    ``place`` maps the final path to where it is written now (a staging folder's twin).
    """
    record = {
        "cosalbench": __version__,
        "fingerprint": fingerprint,
        "n_pairs": n_pairs,
        "options": dict(options),
    }
    path = fingerprint_path(json_path)
    io.write_text(
        place(path) if place else path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    )
    return path
