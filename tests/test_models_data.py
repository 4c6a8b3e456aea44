"""Reference-model data: the in-memory group dataset, augmentation, tensors and GCoNet's group pairs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from cosalbench.errors import CosalbenchError  # noqa: E402
from reference_models import cache, gconet, loader  # noqa: E402
from reference_models.data import GroupDataset, group_pairs, to_tensor_batch  # noqa: E402


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


def test_device_augmentation_flips_rotates_and_keeps_masks_binary(dataset: GroupDataset) -> None:
    group = dataset.groups[0]
    images = np.stack([dataset.image(group, i) for i in range(3)])
    masks = np.stack([dataset.mask(group, i) for i in range(3)])
    raw = {"images": torch.from_numpy(images), "masks": torch.from_numpy(masks),
           "labels": torch.zeros(3, dtype=torch.long), "flips": torch.tensor([True, False, False]),
           "angles": torch.tensor([0.0, 90.0, 33.0])}  # fmt: skip
    batch = loader.device_batch(raw, torch.device("cpu"))
    expected, _ = to_tensor_batch([images[0][:, ::-1].copy(), np.rot90(images[1]).copy()])
    assert torch.allclose(batch["images"][:2], expected, atol=1e-5)  # flip; 90 degrees counter-clockwise
    pil_mask = np.asarray(Image.fromarray(masks[2]).rotate(33.0, resample=Image.NEAREST))
    assert np.array_equal(batch["masks"][2, 0].numpy() * 255, pil_mask)  # PIL's rotate, nearest
    assert set(torch.unique(batch["masks"]).tolist()) <= {0.0, 1.0}


def test_device_augmentation_folds_flips_into_rotation_and_resamples_only_rotated_images(
    dataset: GroupDataset,
) -> None:
    group = dataset.groups[1]
    images = np.stack([dataset.image(group, i) for i in range(4)])
    masks = np.stack([dataset.mask(group, i) for i in range(4)])
    flips, angles = torch.tensor([True, True, False, False]), torch.tensor([-47.0, 0.0, 0.0, 12.5])
    raw = {"images": torch.from_numpy(images), "masks": torch.from_numpy(masks),
           "labels": torch.arange(4), "flips": flips, "angles": angles}  # fmt: skip
    batch = loader.device_batch(raw, torch.device("cpu"))
    assert batch["images"].is_contiguous() and batch["images"].dtype == torch.float32
    for index in range(4):  # a mixed batch gives each image what it gets alone
        alone = {key: value[index : index + 1] for key, value in raw.items()}
        single = loader.device_batch(alone, torch.device("cpu"))
        assert torch.allclose(batch["images"][index], single["images"][0], atol=1e-6)
        assert torch.equal(batch["masks"][index], single["masks"][0])
        if angles[index] == 0:  # never resampled, even in a batch that rotates others
            assert torch.equal(batch["images"][index], single["images"][0])
    unrotated, _ = to_tensor_batch([images[1][:, ::-1].copy(), images[2]])
    assert torch.allclose(batch["images"][1:3], unrotated, rtol=0, atol=1e-6)  # flipped or kept
    flipped = Image.fromarray(masks[0]).transpose(Image.FLIP_LEFT_RIGHT)
    pil_mask = np.asarray(flipped.rotate(-47.0, resample=Image.NEAREST))
    assert np.array_equal(batch["masks"][0, 0].numpy() * 255, pil_mask)  # flip, then PIL's rotate
    assert torch.equal(batch["labels"], torch.arange(4))


def test_cache_stores_each_image_once_and_is_reused(dataset: GroupDataset, tmp_path: Path) -> None:
    entry = cache.open_or_build(dataset, tmp_path, workers=2, progress=False)
    assert entry.images.shape == (24, 48, 48, 3) and entry.masks.shape == (24, 48, 48)
    item = dataset.pairs()[7]
    images, masks = entry.gather(np.array([7]))
    assert np.array_equal(images[0], dataset.image(item.group, 1)) and np.array_equal(
        masks[0], dataset.mask(item.group, 1)
    )
    assert tuple(entry.original_sizes[7]) == (120, 160)
    again = cache.open_or_build(dataset, tmp_path, progress=False)
    assert again.folder == entry.folder and len(list(tmp_path.iterdir())) == 1


def test_rank_shares_cover_the_epoch_and_count_global_steps() -> None:
    assert loader.rank_share(5, 2, 0) == [0, 2, 4] and loader.rank_share(5, 2, 1) == [1, 3, 0]  # padded
    assert loader.rank_share(5, 2, 1, "drop") == [1, 3]
    assert loader.rank_share(4, 1, 0) == [0, 1, 2, 3]


def kept(stream: Iterator[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Copies of a loader stream's batches (each yielded batch is a view of its slot until the next one)."""
    return [{key: value.clone() for key, value in batch.items()} for batch in stream]


def test_worker_processes_deliver_the_same_batches(dataset: GroupDataset, tmp_path: Path) -> None:
    entry = cache.open_or_build(dataset, tmp_path, workers=1, progress=False)
    cfg = {"seed": 3, "group_size": 4, "augment": True, "flip_p": 0.5, "max_angle": 90.0}
    plans = loader.epoch_plan(gconet, dataset, cfg, epoch=0)
    again = loader.epoch_plan(gconet, dataset, cfg, epoch=0)  # a plan depends on (seed, epoch) only
    assert all(
        np.array_equal(a.pairs, b.pairs) and np.array_equal(a.angles, b.angles)
        for a, b in zip(plans, again, strict=True)
    )
    inline = kept(loader.share_batches(entry, plans, workers=0, prefetch=1))
    workers = kept(loader.share_batches(entry, plans, workers=2, prefetch=1))
    assert len(inline) == len(workers) == 4
    for a, b in zip(inline, workers, strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)
    plan, cpu = plans[0], torch.device("cpu")
    assert plan.flips.any() and not plan.flips.all()
    images, masks = entry.gather(plan.pairs)  # unflipped: device_batch flips them instead
    raw = {"images": torch.from_numpy(images), "masks": torch.from_numpy(masks), "flips": torch.from_numpy(plan.flips),
           "labels": torch.from_numpy(plan.labels), "angles": torch.from_numpy(plan.angles)}  # fmt: skip
    assert torch.equal(
        inline[0]["images"][plan.flips], raw["images"][plan.flips].flip(2)
    )  # mirrored by the gather
    on_device, from_loader = loader.device_batch(raw, cpu), loader.device_batch(inline[0], cpu)
    assert torch.allclose(on_device["images"], from_loader["images"], atol=1e-4)
    assert (on_device["masks"] != from_loader["masks"]).float().mean() < 1e-3  # nearest ties only


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
    plans = list(gconet.plan_batches(dataset, {"group_size": 4}, np.random.default_rng(0)))
    assert len(plans) == 4
    pairs, labels = plans[0]
    assert pairs.shape == (8,) and labels.tolist()[:4] == [labels[0]] * 4 and labels[4] != labels[0]
    groups = [dataset.pairs()[i].group for i in pairs.tolist()]
    assert groups[:4] == [dataset.groups[labels[0]]] * 4 and groups[4:] == [dataset.groups[labels[4]]] * 4
