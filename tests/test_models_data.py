"""Reference-model data: the in-memory group dataset, augmentation, tensors and GCoNet's group pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosalbench.errors import CosalbenchError  # noqa: E402
from reference_models import gconet  # noqa: E402
from reference_models.data import GroupDataset, augment, group_pairs, to_tensor_batch  # noqa: E402


@pytest.fixture(scope="module")
def dataset(synth_root: Path) -> GroupDataset:
    return GroupDataset(synth_root, "Synth", 48)


def test_dataset_lists_groups_items_and_categories(dataset: GroupDataset, synth_root: Path) -> None:
    assert dataset.groups == sorted(dataset.groups) and len(dataset.groups) == 4
    assert len(dataset) == 24
    item = dataset.items[dataset.groups[0]][0]
    assert item.group == dataset.groups[0] and item.stem == "0000"
    assert item.image_path == synth_root / "images" / "Synth" / item.group / "0000.jpg"
    assert item.group in item.categories  # the common category, from the manifest


def test_images_and_masks_are_resized_and_cached(dataset: GroupDataset) -> None:
    group = dataset.groups[1]
    image, mask = dataset.image(group, 2), dataset.mask(group, 2)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert mask.shape == (48, 48) and set(np.unique(mask)) <= {0, 255} and mask.max() == 255
    assert dataset.image(group, 2) is image  # decoded once
    assert dataset.original_size(group, 2) == (120, 160)


def test_missing_dataset_and_masks_are_errors(synth_root: Path, tmp_path: Path) -> None:
    with pytest.raises(CosalbenchError, match="not found"):
        GroupDataset(synth_root, "Nope", 32)
    (tmp_path / "images" / "X" / "g").mkdir(parents=True)
    (tmp_path / "images" / "X" / "g" / "a.jpg").write_bytes(
        (synth_root / "images" / "Synth").glob("*/*.jpg").__next__().read_bytes()
    )
    with pytest.raises(CosalbenchError, match="without a mask"):
        GroupDataset(tmp_path, "X", 32)
    assert len(GroupDataset(tmp_path, "X", 32, with_masks=False)) == 1


def test_augment_is_deterministic_and_keeps_masks_binary(dataset: GroupDataset) -> None:
    group = dataset.groups[0]
    images = [dataset.image(group, i) for i in range(3)]
    masks = [dataset.mask(group, i) for i in range(3)]
    a_images, a_masks = augment(images, masks, np.random.default_rng(7))
    b_images, b_masks = augment(images, masks, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(a_images, b_images, strict=True))
    assert all(set(np.unique(m)) <= {0, 255} for m in a_masks)
    flipped, flipped_masks = augment(images, masks, np.random.default_rng(0), flip_p=1.0, max_angle=0.0)
    assert np.array_equal(flipped[0], images[0][:, ::-1]) and np.array_equal(
        flipped_masks[0], masks[0][:, ::-1]
    )


def test_to_tensor_batch_normalises_with_imagenet_statistics() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255
    mask = np.full((4, 4), 255, np.uint8)
    x, y = to_tensor_batch([image], [mask])
    assert tuple(x.shape) == (1, 3, 4, 4) and tuple(y.shape) == (1, 1, 4, 4)
    assert float(x[0, 0, 0, 0]) == pytest.approx((1 - 0.485) / 0.229, rel=1e-6)
    assert float(x[0, 2, 0, 0]) == pytest.approx(-0.406 / 0.225, rel=1e-6)
    assert float(y.min()) == 1.0


def test_group_pairs_follow_the_gconet_rule() -> None:
    sizes = [20, 5, 16, 9]
    pairs = group_pairs(sizes, np.random.default_rng(3))
    assert sorted(p.first for p in pairs) == [0, 1, 2, 3]  # every group once as the first group
    for pair in pairs:
        assert pair.first != pair.second
        n = min(16, sizes[pair.first], sizes[pair.second])
        assert len(pair.first_images) == len(pair.second_images) == n
        assert len(set(pair.first_images.tolist())) == n and max(pair.first_images) < sizes[pair.first]
    again = group_pairs(sizes, np.random.default_rng(3))
    assert all(
        a.second == b.second and np.array_equal(a.first_images, b.first_images)
        for a, b in zip(pairs, again, strict=True)
    )


def test_gconet_batches(dataset: GroupDataset) -> None:
    batches = list(gconet.make_batches(dataset, {"group_size": 4}, np.random.default_rng(0)))
    assert len(batches) == 4
    batch = batches[0]
    assert tuple(batch["images"].shape) == (8, 3, 48, 48) and tuple(batch["masks"].shape) == (8, 1, 48, 48)
    labels = batch["labels"].tolist()
    assert labels[:4] == [labels[0]] * 4 and labels[4:] == [labels[4]] * 4 and labels[0] != labels[4]
