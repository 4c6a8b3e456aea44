"""CBCS end to end on synthetic groups: the common object wins, order invariance, determinism, robustness."""

from __future__ import annotations

import numpy as np
import pytest

from cosalbench.baselines import cbcs
from cosalbench.datasets import synth

# BGR colours of distractors, each used in one image only (none close to the common objects used)
UNIQUE_DISTRACTORS = [
    (30, 220, 60),
    (230, 200, 20),
    (20, 140, 250),
    (180, 30, 200),
    (240, 240, 240),
    (120, 60, 10),
]


def spec_group(seed: int, n: int = 6, height: int = 240, width: int = 320):
    """Spec section 9 test 10: red disks on gradients, a green square in image 0 only (BGR images)."""
    rng = np.random.default_rng(seed)
    images, disks = [], []
    rows, cols = np.mgrid[:height, :width]
    square = (rows >= 20) & (rows < 80) & (cols >= 20) & (cols < 80)
    for index in range(n):
        start, end = rng.integers(0, 256, (2, 3))
        ramp = np.linspace(0.0, 1.0, width)[None, :, None]
        rgb = start * (1 - ramp) + end * ramp + rng.normal(0, 6, (height, width, 3))
        radius = int(rng.integers(40, 61))
        cy, cx = height // 2 + int(rng.integers(-30, 31)), width // 2 + int(rng.integers(-30, 31))
        disk = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        rgb[disk] = np.array([220, 30, 40]) + rng.normal(0, 8, (int(disk.sum()), 3))
        if index == 0:
            rgb[square] = np.array([30, 220, 60]) + rng.normal(0, 8, (int(square.sum()), 3))
        images.append(np.clip(np.round(rgb), 0, 255).astype(np.uint8)[:, :, ::-1].copy())
        disks.append(disk)
    return images, disks, square


def synth_group_with_unique_distractors(common: str, seed: int = 0, n: int = 6):
    """Synth images of ``common`` (mask from synth) plus one square distractor per image, each of
    a colour no other image has; returns images, common masks and distractor masks (exact)."""
    rng = np.random.default_rng(seed)
    images, commons, distractors = [], [], []
    for index in range(n):
        image, mask, _ = synth.render_image(rng, common, 120, 160, max_distractors=0)
        common_mask = mask > 0
        side = 30
        corner = next(
            (y, x)
            for y in range(0, 120 - side, 5)
            for x in range(0, 160 - side, 5)
            if not common_mask[y : y + side, x : x + side].any()
        )
        distractor = np.zeros_like(common_mask)
        distractor[corner[0] : corner[0] + side, corner[1] : corner[1] + side] = True
        noise = rng.normal(0, 8, (int(distractor.sum()), 3))
        image = image.copy()
        image[distractor] = np.clip(np.array(UNIQUE_DISTRACTORS[index]) + noise, 0, 255).astype(np.uint8)
        images.append(image)
        commons.append(common_mask)
        distractors.append(distractor)
    return images, commons, distractors


@pytest.mark.parametrize("seed", [5489, 1])
def test_spec_group_common_object_beats_background_and_distractor(seed: int) -> None:
    images, disks, square = spec_group(seed)
    maps = [cbcs.to_uint8(m).astype(float) for m in cbcs.co_saliency(images)]
    object_mean = np.mean([m[d].mean() for m, d in zip(maps, disks, strict=True)])
    background_mean = np.mean([m[~d & ~square].mean() for m, d in zip(maps, disks, strict=True)])
    assert object_mean > 10 * background_mean
    assert maps[0][square].mean() < 0.1 * object_mean


@pytest.mark.parametrize("common", ["red disc", "blue star"])
def test_repeated_synth_object_beats_single_image_distractors(common: str) -> None:
    images, commons, distractors = synth_group_with_unique_distractors(common)
    maps = cbcs.co_saliency(images)
    common_mean = np.concatenate([m[c] for m, c in zip(maps, commons, strict=True)]).mean()
    distractor_mean = np.concatenate([m[d] for m, d in zip(maps, distractors, strict=True)]).mean()
    assert common_mean > 3 * distractor_mean


def _synth_images(n: int = 5, height: int = 90, width: int = 120) -> list[np.ndarray]:
    spec = synth.SynthSpec(n_groups=1, images_per_group=n, height=height, width=width, seed=4)
    return [sample.image for sample in synth.generate(spec)]


def test_maps_do_not_depend_on_image_order() -> None:
    images = _synth_images()
    names = [f"{i:04d}.jpg" for i in range(len(images))]
    permutation = [3, 0, 4, 2, 1]
    for with_names in (False, True):
        base = cbcs.co_saliency(images, names=names if with_names else None)
        shuffled = cbcs.co_saliency(
            [images[i] for i in permutation], names=[names[i] for i in permutation] if with_names else None
        )
        for position, original in enumerate(permutation):
            np.testing.assert_array_equal(shuffled[position], base[original])


def test_same_seed_same_bytes_and_output_contract() -> None:
    images = _synth_images(n=3)
    images[1] = images[1][:70, :101]  # sizes may differ within a group
    first = [cbcs.to_uint8(m).tobytes() for m in cbcs.co_saliency(images, cbcs.CBCSParams(seed=11))]
    maps = cbcs.co_saliency(images, cbcs.CBCSParams(seed=11))
    assert [cbcs.to_uint8(m).tobytes() for m in maps] == first
    for saliency, image in zip(maps, images, strict=True):
        assert saliency.shape == image.shape[:2]
        assert saliency.min() >= 0.0 and saliency.max() <= 1.0
    work = cbcs.work_maps(images)
    for final, single in zip(work.final, work.single, strict=True):
        assert final.shape == (200, 200)
        assert np.all(final <= single + 1e-12)


def test_stretch_option_spans_full_range() -> None:
    maps = cbcs.co_saliency(_synth_images(n=2), cbcs.CBCSParams(stretch=True))
    for saliency in maps:
        assert saliency.min() == 0.0 and saliency.max() == 1.0


def test_grey_and_bgra_inputs_match_their_bgr_equivalents() -> None:
    images = _synth_images(n=2)
    grey = images[0][:, :, 1].copy()
    bgra = np.dstack([images[1], np.full(images[1].shape[:2], 77, np.uint8)])
    got = cbcs.co_saliency([grey, bgra], names=["a", "b"])
    want = cbcs.co_saliency([np.dstack([grey] * 3), images[1]], names=["a", "b"])
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="uint8"):
        cbcs.co_saliency([images[0].astype(np.float32)])


def test_degenerate_groups_run() -> None:
    tiny = _synth_images(n=1, height=30, width=50)[0]  # smaller than S: upscaled
    flat = np.full((40, 60, 3), 128, np.uint8)
    two_colours = np.zeros((40, 60, 3), np.uint8)
    two_colours[:, 30:] = (0, 0, 255)
    maps = cbcs.co_saliency([tiny, flat, two_colours])  # 3 distinct colours in two images < K
    assert [m.shape for m in maps] == [(30, 50), (40, 60), (40, 60)]
    assert all(np.isfinite(m).all() for m in maps)
    flat_only = cbcs.co_saliency([flat, flat])
    assert all(np.isfinite(m).all() for m in flat_only)


def test_one_image_group_uses_neutral_correspondence() -> None:
    image = _synth_images(n=1)[0]
    (alone,) = cbcs.co_saliency([image])
    assert alone.shape == image.shape[:2] and alone.max() > 0.2


def test_large_group_caps_clusters() -> None:
    params = cbcs.CBCSParams(scale=24)
    assert [params.group_clusters(n) for n in (1, 5, 6, 14, 15, 40)] == [10, 10, 12, 28, 30, 30]
    images = _synth_images(n=40, height=24, width=32)
    maps = cbcs.co_saliency(images, params)
    assert len(maps) == 40 and all(m.shape == (24, 32) for m in maps)


def test_single_image_mode_highlights_the_object() -> None:
    spec = synth.SynthSpec(n_groups=1, images_per_group=1, height=150, width=200, max_distractors=0, seed=2)
    sample = next(synth.generate(spec))
    saliency = cbcs.single_saliency(sample.image)
    assert saliency.shape == (150, 200)
    assert saliency.max() == pytest.approx(1.0, abs=0.02)  # pixel-level normalisation
    assert saliency[sample.mask > 0].mean() > 2 * saliency[sample.mask == 0].mean()
