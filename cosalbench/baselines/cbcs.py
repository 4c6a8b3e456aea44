"""CBCS: cluster-based co-saliency (Fu, Cao, Tu, IEEE TIP 2013), a port of the authors' Matlab release.

Pipeline for a group of N images (defaults of the release's co-saliency demo):

1. every image is resized to S x S (S = 200, aspect ignored) with Matlab's bicubic ``imresize``
   and converted to rounded CIE Lab;
2. group layer: one k-means++ over all N*S*S pixels (K = min(max(2N, 10), 30)); per cluster a
   contrast, a spatial and a correspondence cue, each Gaussian-normalised (``gauss_normal``) and
   multiplied; pixels take their cluster's weight, then a 3x3 Gaussian blur runs over the N maps
   laid side by side;
3. single layer: one k-means++ per image (K = 6) with contrast x spatial, painted and blurred;
4. final = single x group, resized back to each image's size (bicubic), not stretched.

Randomness: one ``RandomState(seed)`` per group (Matlab's default stream is MT19937 seeded 5489,
the default seed here), consumed by the group k-means first, then by each image's k-means in the
group's canonical order. The canonical order is file-name order (what Matlab's ``dir`` gives) when
names are known, else the order of the images' content digests, so the maps do not depend on the
order in which the images are passed. See ``docs/cbcs.md`` for every deviation from the release.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cosalbench import __version__, io, layout
from cosalbench.baselines.colour import matlab_round, rounded_lab
from cosalbench.baselines.kmeans import kmeans_pp
from cosalbench.datasets import registry
from cosalbench.datasets.inputs import refuse_unreadable
from cosalbench.errors import CosalbenchError
from cosalbench.imresize import imresize
from cosalbench.layout import entry_problem
from cosalbench.parallel import process_pool

PARAMS_FILE = "cbcs.json"
SKIP_HINT = "fix or remove them, or pass --skip-unreadable to predict the others"


@dataclass(frozen=True)
class CBCSParams:
    """Parameters of CBCS; the defaults are those of the release's co-saliency demo."""

    scale: int = 200  # work resolution S (square); the single-image demo uses 300
    single_clusters: int = 6  # K per image
    group_clusters_per_image: int = 2  # K_group = min(max(2N, min), max)
    min_group_clusters: int = 10
    max_group_clusters: int = 30
    seed: int = 5489  # Matlab's default stream
    stretch: bool = False  # True: min-max stretch each final map (the release does not)

    def group_clusters(self, n_images: int) -> int:
        """K of the group k-means for ``n_images`` images."""
        wanted = self.group_clusters_per_image * n_images
        return min(max(wanted, self.min_group_clusters), self.max_group_clusters)


# --------------------------------------------------------------------------- cues


def gauss_normal(values: np.ndarray) -> np.ndarray:
    """The release's Gaussian normalisation: max -> 1, min -> e^-2, monotone; constant -> ones.

    ``exp(-(v - max)^2 / (2 sigma^2))`` with ``sigma = (max - min) / 2``; NaN entries are ignored
    by max/min and stay NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    top, bottom = np.nanmax(values), np.nanmin(values)
    if top == bottom:
        return np.where(np.isnan(values), np.nan, 1.0)
    sigma = (top - bottom) / 2.0
    return np.exp(-((values - top) ** 2) / (2.0 * sigma**2))


def contrast_cue(centres: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """w_c(k) = sum_j (n_j / n) * ||mu_j - mu_k||, the size of the *other* cluster as weight."""
    gaps = np.sqrt(((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    return gaps @ (counts / counts.sum())


def spatial_cue(labels: np.ndarray, distances: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """w_s(k) = exp(-dbar_k^2 / (2 sigma^2)), dbar_k the mean centre distance of cluster k's pixels."""
    counts = np.bincount(labels, minlength=k)
    mean_distance = np.bincount(labels, weights=distances, minlength=k) / counts
    return np.exp(-(mean_distance**2) / (2.0 * sigma**2))


def correspondence_cue(labels: np.ndarray, image_index: np.ndarray, k: int, n_images: int) -> np.ndarray:
    """w_d(k) = mean_m h_k(m) / (std_m h_k(m) + 1), h_k the cluster's share in each image (ddof 1).

    With one image the spread is 0 (Matlab's ``std`` of a scalar), so the cue is constant.
    """
    joint = np.bincount(labels * n_images + image_index, minlength=k * n_images).reshape(k, n_images)
    share = joint / joint.sum(axis=1, keepdims=True)
    spread = share.std(axis=1, ddof=1) if n_images > 1 else np.zeros(k)
    return share.mean(axis=1) / (spread + 1.0)


def centre_distances(scale: int) -> np.ndarray:
    """Rounded distance of each pixel of the S x S grid to the release's centre (S/2, S/2), 1-based."""
    rows, cols = np.meshgrid(np.arange(1, scale + 1), np.arange(1, scale + 1), indexing="ij")
    return matlab_round(np.sqrt((cols - scale / 2.0) ** 2 + (rows - scale / 2.0) ** 2))


def _blur_kernel() -> np.ndarray:
    """Matlab ``fspecial('gaussian', 3, 3)``."""
    x = np.arange(-1, 2, dtype=np.float64)
    kernel = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * 3.0**2))
    return kernel / kernel.sum()


_BLUR = _blur_kernel()


def smooth(weight_map: np.ndarray) -> np.ndarray:
    """3x3 Gaussian (sigma 3) correlation, zero padding, same size (Matlab ``imfilter`` default)."""
    return cv2.filter2D(weight_map.astype(np.float64), -1, _BLUR, borderType=cv2.BORDER_CONSTANT)


def smooth_mosaic(maps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``smooth`` run once over equally sized maps laid side by side, as the release does.

    Neighbouring maps bleed into each other by one column; only the mosaic's border is zero-padded.
    """
    height, width = maps[0].shape
    mosaic = smooth(np.concatenate(list(maps), axis=1))
    return list(mosaic.reshape(height, len(maps), width).transpose(1, 0, 2))


# --------------------------------------------------------------------------- the two layers


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An OpenCV-style uint8 image (grey, BGR or BGRA) as 3-channel RGB; alpha is dropped."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, 2::-1])
    raise ValueError(f"expected a grey, BGR or BGRA image, got shape {image.shape}")


def _features(image: np.ndarray, scale: int) -> np.ndarray:
    """Rounded Lab of the S x S resized image, pixels in column-major order (``S*S x 3``)."""
    rgb = imresize(to_rgb(image), (scale, scale))
    return rounded_lab(rgb).transpose(1, 0, 2).reshape(-1, 3)


def _paint(weights: np.ndarray, labels: np.ndarray, n_images: int, scale: int) -> np.ndarray:
    """Per-pixel weights as ``(n_images, S, S)`` maps from column-major labels."""
    return weights[labels].reshape(n_images, scale, scale).transpose(0, 2, 1)


@dataclass(frozen=True)
class CBCSMaps:
    """The maps of one group at the work resolution S x S, in the order the images were given."""

    single: list[np.ndarray]
    group: list[np.ndarray]
    final: list[np.ndarray]


def _single_layer(features: np.ndarray, params: CBCSParams, rng: np.random.RandomState) -> np.ndarray:
    """Single-image map at S x S: k-means, G(contrast) x G(spatial) per cluster, painted and smoothed."""
    scale = params.scale
    result = kmeans_pp(features, params.single_clusters, rng.random_sample)
    k = len(result.centres)
    counts = np.bincount(result.labels, minlength=k).astype(np.float64)
    distances = centre_distances(scale).T.reshape(-1)
    weights = gauss_normal(contrast_cue(result.centres, counts)) * gauss_normal(
        spatial_cue(result.labels, distances, k, float(scale))
    )
    return smooth(_paint(weights, result.labels, 1, scale)[0])


def _group_layer(
    features: list[np.ndarray], params: CBCSParams, rng: np.random.RandomState
) -> list[np.ndarray]:
    """Group k-means over all pixels, fused cues, painted and blurred on the side-by-side mosaic."""
    n, scale = len(features), params.scale
    pooled = np.concatenate(features)
    result = kmeans_pp(pooled, params.group_clusters(n), rng.random_sample)
    k = len(result.centres)
    counts = np.bincount(result.labels, minlength=k).astype(np.float64)
    distances = np.tile(centre_distances(scale).T.reshape(-1), n)
    image_index = np.repeat(np.arange(n), scale * scale)
    weights = (
        gauss_normal(contrast_cue(result.centres, counts))
        * gauss_normal(spatial_cue(result.labels, distances, k, float(scale)))
        * gauss_normal(correspondence_cue(result.labels, image_index, k, n))
    )
    return smooth_mosaic(list(_paint(weights, result.labels, n, scale)))


def canonical_order(images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[int]:
    """The order CBCS processes a group in: by name (byte order) if given, else by content digest."""
    if names is not None:
        if len(names) != len(images):
            raise ValueError(f"{len(names)} names for {len(images)} images")
        if len(set(names)) != len(names):
            raise ValueError("image names must be distinct")
        keys: list[bytes] = [name.encode("utf-8") for name in names]
    else:
        keys = [_digest(image) for image in images]
    return sorted(range(len(images)), key=lambda i: keys[i])


def _digest(image: np.ndarray) -> bytes:
    """A content key: SHA-1 of the shape, dtype and pixels."""
    image = np.ascontiguousarray(image)
    header = f"{image.shape}{image.dtype}".encode()
    return hashlib.sha1(header + image.tobytes()).digest()


def work_maps(
    images: Sequence[np.ndarray], params: CBCSParams = CBCSParams(), names: Sequence[str] | None = None
) -> CBCSMaps:
    """Single, group and final maps of a group at S x S (float64, [0, 1]), in the given order."""
    if len(images) == 0:
        raise ValueError("a CBCS group needs at least one image")
    order = canonical_order(images, names)
    rng = np.random.RandomState(params.seed)
    features = [_features(images[i], params.scale) for i in order]
    group = _group_layer(features, params, rng)
    single = [_single_layer(feature, params, rng) for feature in features]
    back = np.argsort(order)
    single_maps = [single[j] for j in back]
    group_maps = [group[j] for j in back]
    return CBCSMaps(single_maps, group_maps, [s * g for s, g in zip(single_maps, group_maps, strict=True)])


def _to_original(work_map: np.ndarray, height: int, width: int, stretch: bool) -> np.ndarray:
    """Resize a work-resolution map to ``height x width`` (Matlab bicubic), clamp (or stretch) to [0, 1]."""
    out = np.clip(imresize(work_map, (height, width)), 0.0, 1.0)
    if stretch:
        low, high = out.min(), out.max()
        out = (out - low) / (high - low) if high > low else np.zeros_like(out)
    return out


def co_saliency(
    images: Sequence[np.ndarray], params: CBCSParams = CBCSParams(), names: Sequence[str] | None = None
) -> list[np.ndarray]:
    """CBCS co-saliency maps (float64 in [0, 1], each at its image's size) of one group.

    ``images`` are uint8 BGR (grey and BGRA accepted). ``names`` (file names) fix the processing
    order as the release's ``dir`` listing would; without them the content decides it. Either way
    permuting the inputs permutes the outputs and changes nothing else.
    """
    maps = work_maps(images, params, names)
    return [
        _to_original(final, image.shape[0], image.shape[1], params.stretch)
        for final, image in zip(maps.final, images, strict=True)
    ]


def single_saliency(image: np.ndarray, params: CBCSParams = CBCSParams(scale=300)) -> np.ndarray:
    """The release's single-image demo: one k-means (K = 6) at S = 300, pixel-level normalisation.

    Returns a float64 map in [0, 1] at the image's size.
    """
    rng = np.random.RandomState(params.seed)
    work = gauss_normal(_single_layer(_features(image, params.scale), params, rng))
    return _to_original(work, image.shape[0], image.shape[1], params.stretch)


def to_uint8(saliency: np.ndarray) -> np.ndarray:
    """A [0, 1] map as 8-bit grey: ``floor(255 x + 0.5)``."""
    return np.floor(255.0 * np.clip(saliency, 0.0, 1.0) + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- datasets


GroupOutcome = tuple[int, tuple[str | None, str, str | None] | None, list[tuple[str, str]]]


def _predict_group(
    group_dir: Path, out_dir: Path, params: CBCSParams, skip_unreadable: bool = False
) -> GroupOutcome:
    """Write the maps of one group; returns (images written, error as (path, problem, hint) or None,
    images skipped as (path, problem) when ``skip_unreadable``)."""
    try:
        paths, skipped = _readable_inputs(group_dir, skip_unreadable)
    except CosalbenchError as exc:
        return 0, (exc.path, exc.problem, exc.hint), []
    images, kept = [], []
    for path in paths:
        try:
            images.append(io.read_bgr(path, ignore_orientation=True))  # as Matlab's imread
            kept.append(path)
        except CosalbenchError as exc:  # exceptions with extra fields do not cross process boundaries
            if not skip_unreadable:
                return 0, (exc.path, exc.problem, exc.hint), skipped
            skipped.append((str(path), exc.problem))
    if not images:
        return 0, None, skipped
    maps = co_saliency(images, params, names=[path.name for path in kept])
    for path, saliency in zip(kept, maps, strict=True):
        io.write_png(out_dir / f"{path.stem}.png", to_uint8(saliency))
    return len(kept), None, skipped


def group_inputs(group_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image entries of one group folder: (readable files, (entry, problem) for the others).

    Every entry named like an image counts, so a broken link, a folder called ``0004.jpg`` or an
    empty file is reported rather than dropped. Two images sharing a stem (``a.jpg`` and ``a.png``)
    would both be written to ``a.png``: that is refused, as no rule can say which one is meant.
    """
    entries = sorted(
        (
            entry
            for entry in Path(group_dir).iterdir()
            if entry.suffix.lower() in layout.IMAGE_EXTENSIONS and not layout.is_system_file(entry)
        ),
        key=lambda entry: (entry.stem, entry.name),  # stem order, as the maps are named
    )
    by_stem: dict[str, Path] = {}
    for entry in entries:
        if entry.stem in by_stem:
            raise CosalbenchError(
                entry,
                f"shares its stem with {by_stem[entry.stem].name}: both would be written to {entry.stem}.png",
                "keep one image per stem in the group folder",
            )
        by_stem[entry.stem] = entry
    problems = [(entry, problem) for entry in entries if (problem := entry_problem(entry)) is not None]
    bad = {entry for entry, _ in problems}
    return [entry for entry in entries if entry not in bad], problems


def _readable_inputs(group_dir: Path, skip_unreadable: bool) -> tuple[list[Path], list[tuple[str, str]]]:
    """``group_inputs`` for a worker: unreadable entries are an error unless ``skip_unreadable``."""
    paths, problems = group_inputs(group_dir)
    if not skip_unreadable:
        refuse_unreadable(problems, len(paths) + len(problems), "images", SKIP_HINT)
    return paths, [(str(path), problem) for path, problem in problems]


def _resolve_dataset(data_root: Path, dataset: str) -> str:
    """The dataset's image folder name: as given, the registry's spelling, or the one folder that
    matches case-insensitively."""
    root = layout.images_dir(data_root, dataset).parent
    info = registry.lookup(dataset)
    for name in (dataset, info.name if info is not None else dataset):
        if (root / name).is_dir():
            return name
    folded = (
        [name for name in layout.list_groups(root) if name.casefold() == dataset.casefold()]
        if root.is_dir()
        else []
    )
    if len(folded) == 1:
        return folded[0]
    raise CosalbenchError(
        layout.images_dir(data_root, dataset),
        "dataset image folder not found",
        "check --data-root and the dataset name, or standardise the dataset first",
    )


def _check_params(params_path: Path, params: CBCSParams, overwrite: bool) -> None:
    """Refuse to mix maps made with different parameters in one prediction folder."""
    if overwrite or not params_path.is_file():
        return
    try:
        previous = json.loads(params_path.read_text(encoding="utf-8"))["params"]
        changed = [key for key, value in dataclasses.asdict(params).items() if previous[key] != value]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CosalbenchError(params_path, "unreadable CBCS parameter record", "pass --overwrite") from exc
    if changed:
        listed = ", ".join(f"{key}={previous[key]} (now {getattr(params, key)})" for key in changed)
        raise CosalbenchError(
            params_path,
            f"existing maps were made with other CBCS parameters: {listed}",
            "pass --overwrite, or write to another --out/--method",
        )


def predict_dataset(
    data_root: str | Path | None,
    dataset: str,
    pred_root: str | Path,
    method: str = "cbcs",
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    params: CBCSParams = CBCSParams(),
    skip_unreadable: bool = False,
) -> Path:
    """Write CBCS maps for every image of a canonical dataset; returns the prediction folder.

    Output: ``<pred_root>/<method>/<dataset>/<group>/<stem>.png`` (8-bit grey) plus ``cbcs.json``
    (the parameters). Groups run in ``workers`` processes; each group has its own seeded stream,
    so the files do not depend on ``workers``. A group whose maps all exist is skipped unless
    ``overwrite``. With ``progress``, a progress bar and a summary line go to stderr.

    An image that cannot be read (a broken link, a folder in its place, an empty or corrupt file)
    is an error naming it, before any map is written when the listing shows it; with
    ``skip_unreadable`` the group is predicted from its readable images and the summary counts
    the skipped ones. A run that would write no map at all is an error either way.
    """
    data_root = layout.resolve_data_root(data_root)
    dataset = _resolve_dataset(data_root, registry.dataset_folder_name(dataset))
    method = layout.plain_name(method, "--method")
    source = layout.images_dir(data_root, dataset)
    groups = layout.list_groups(source)
    if not groups:
        raise CosalbenchError(source, "no group folders", "expected images/<dataset>/<group>/<image>")
    listed = {group: group_inputs(source / group) for group in groups}
    problems = [problem for _, group_problems in listed.values() for problem in group_problems]
    expected = sum(len(paths) + len(group_problems) for paths, group_problems in listed.values())
    if not skip_unreadable:
        refuse_unreadable(problems, expected, "images", SKIP_HINT)
    if len(problems) == expected:
        raise CosalbenchError(source, f"none of the {expected} images can be read (0 maps to write)")
    out = layout.prediction_dir(Path(pred_root), method, dataset)
    params_path = out / PARAMS_FILE
    _check_params(params_path, params, overwrite)
    io.write_json(
        params_path, {"cosalbench": __version__, "method": method, "params": dataclasses.asdict(params)}
    )

    todo: list[tuple[str, int]] = []
    finished = 0
    for group, (paths, _) in listed.items():
        if not paths:
            continue
        done = all((out / group / f"{path.stem}.png").is_file() for path in paths)
        if done and not overwrite:
            finished += len(paths)
        else:
            todo.append((group, len(paths)))

    start = time.perf_counter()
    written = 0
    skipped: list[tuple[str, str]] = list(map(_as_text, problems))
    with tqdm(
        total=sum(n for _, n in todo),
        unit="img",
        desc=f"cbcs {dataset}",
        disable=not progress or not todo,
        file=sys.stderr,
    ) as bar:
        jobs = [(source / group, out / group, params, skip_unreadable) for group, _ in todo]
        for count, error, group_skipped in _run(jobs, workers):
            if error is not None:
                raise CosalbenchError(*error)
            written += count
            skipped += [item for item in group_skipped if item not in skipped]
            bar.update(count)
    produced = written + finished
    if produced == 0:
        raise CosalbenchError(source, f"none of the {expected} images can be read (0 maps written)")
    if progress:
        tqdm.write(
            f"cbcs: {dataset}: {produced} of {expected} maps ({written} written in "
            f"{time.perf_counter() - start:.1f} s, {finished} already there"
            + (f", {len(skipped)} unreadable image(s) skipped, e.g. {skipped[0][0]}" if skipped else "")
            + f") -> {out}",
            file=sys.stderr,
        )
    return out


def _as_text(problem: tuple[Path, str]) -> tuple[str, str]:
    return str(problem[0]), problem[1]


def _predict_group_job(job: tuple[Path, Path, CBCSParams, bool]) -> GroupOutcome:
    """``_predict_group`` on one ``(group_dir, out_dir, params, skip_unreadable)`` tuple (for ``Pool.imap_unordered``)."""
    return _predict_group(*job)


def _run(jobs: list[tuple[Path, Path, CBCSParams, bool]], workers: int) -> Iterator[GroupOutcome]:
    """Yield ``_predict_group`` results, serially or from a process pool, as groups finish."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _predict_group(*job)
        return
    with process_pool(min(workers, len(jobs))) as pool:
        yield from pool.imap_unordered(_predict_group_job, jobs)
