"""Model and CBCS inputs are read as stored, never turned by an EXIF orientation tag (as PIL and Matlab read).

OpenCV's ``imread`` applies the tag; GCoNet's release reads with PIL and CBCS's original with Matlab's
``imread``, neither of which does. A JPEG tagged "rotate 90°" must therefore be fed as stored, its mask
must match it, and its map must be saved at the stored size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cosalbench import io, layout
from cosalbench.baselines import cbcs
from cosalbench.datasets import synth
from reference_models.data import GroupDataset, to_tensor_batch
from reference_models.predict import predict_datasets
from tests.model_checkpoints import tiny_checkpoint

HEIGHT, WIDTH = 48, 64  # stored size: landscape, so a 90-degree turn is visible in the shape
ROTATE_90_CW = 6  # EXIF Orientation value
SPEC = synth.SynthSpec(name="Exif", n_groups=2, images_per_group=3, height=HEIGHT, width=WIDTH, seed=1)


def tag_orientation(path: Path, orientation: int = ROTATE_90_CW) -> None:
    """Re-save a JPEG with an EXIF orientation tag, pixels unchanged otherwise."""
    picture = Image.open(path)
    picture.load()
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture.save(path, "JPEG", quality=95, exif=exif)


@pytest.fixture()
def tagged_root(tmp_path: Path) -> tuple[Path, str, str]:
    """A synthetic set whose first image carries an EXIF 'rotate 90° CW' tag; (root, group, stem)."""
    root = synth.write_dataset(tmp_path / "data", SPEC)
    image_root = layout.images_dir(root, "Exif")
    group = layout.list_groups(image_root)[0]
    stem, path = next(iter(layout.list_images(image_root / group).items()))
    tag_orientation(path)
    assert Image.open(path).getexif()[0x0112] == ROTATE_90_CW
    return root, group, stem


def stored_rgb(path: Path) -> np.ndarray:
    """What the official GCoNet loader decodes: ``PIL.Image.open(path).convert('RGB')``."""
    return np.asarray(Image.open(path).convert("RGB"))


def test_readers_keep_the_stored_orientation_on_request(tagged_root: tuple[Path, str, str]) -> None:
    root, group, stem = tagged_root
    path = layout.images_dir(root, "Exif") / group / f"{stem}.jpg"
    assert io.read_bgr(path).shape == (WIDTH, HEIGHT, 3)  # OpenCV's default turns it
    stored = io.read_bgr(path, ignore_orientation=True)
    np.testing.assert_array_equal(stored[:, :, ::-1], stored_rgb(path))  # the very pixels PIL decodes
    assert io.read_gray(path, ignore_orientation=True).shape == (HEIGHT, WIDTH)


def test_training_and_test_inputs_match_the_official_loader(tagged_root: tuple[Path, str, str]) -> None:
    root, group, stem = tagged_root
    dataset = GroupDataset(root, "Exif", 32)
    index = [item.stem for item in dataset.items[group]].index(stem)
    path = dataset.items[group][index].image_path
    assert dataset.original_size(group, index) == (HEIGHT, WIDTH)
    official = np.asarray(Image.fromarray(stored_rgb(path)).resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(dataset.image(group, index), official)
    # the mask (an untagged PNG) lies on the object: inside it the image differs from the background
    mask = dataset.mask(group, index) > 0
    sample = next(s for s in synth.generate(SPEC) if (s.group, s.stem) == (group, stem))
    expected = np.asarray(Image.fromarray(sample.mask).resize((32, 32), Image.NEAREST)) > 127
    np.testing.assert_array_equal(mask, expected)


def test_input_batches_are_contiguous_like_to_tensor_and_stack() -> None:
    """Channels-last batches round convolutions differently from the release's contiguous NCHW batches."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    batch, _ = to_tensor_batch(images)
    assert batch.is_contiguous()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    reference = torch.stack(
        [(torch.from_numpy(a).permute(2, 0, 1).float() / 255 - mean) / std for a in images]
    )
    assert torch.equal(batch, reference)


def test_predicted_map_has_the_stored_size(tagged_root: tuple[Path, str, str], tmp_path: Path) -> None:
    root, group, stem = tagged_root
    checkpoint = tiny_checkpoint(tmp_path / "final.pth")
    predict_datasets(checkpoint, "gconet", ["Exif"], root, tmp_path / "preds", device="cpu", progress=False)
    saved = Image.open(layout.prediction_dir(tmp_path / "preds", "gconet", "Exif") / group / f"{stem}.png")
    assert saved.size == (WIDTH, HEIGHT)


def test_cbcs_reads_the_stored_orientation(tagged_root: tuple[Path, str, str], tmp_path: Path) -> None:
    root, group, stem = tagged_root
    out = cbcs.predict_dataset(root, "Exif", tmp_path / "preds", progress=False)
    assert Image.open(out / group / f"{stem}.png").size == (WIDTH, HEIGHT)
