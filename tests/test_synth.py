"""The synthetic generator is deterministic and its masks mark the common category."""

from __future__ import annotations

import numpy as np

from cosalbench import io, layout
from cosalbench.datasets import synth


def test_generation_is_deterministic_and_seed_dependent():
    first = list(synth.generate(synth.SynthSpec(n_groups=2, images_per_group=3)))
    second = list(synth.generate(synth.SynthSpec(n_groups=2, images_per_group=3)))
    other = list(synth.generate(synth.SynthSpec(n_groups=2, images_per_group=3, seed=1)))
    assert [s.stem for s in first] == ["0000", "0001", "0002"] * 2
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert any(not np.array_equal(a.mask, c.mask) for a, c in zip(first, other, strict=True))


def test_every_image_shows_its_group_category(synth_root):
    rows = layout.read_manifest(synth_root, "Synth")
    assert len(rows) == 24
    for row in rows:
        assert row["group"] in row["categories"].split(layout.CATEGORY_SEPARATOR)
        mask = io.read_gray(layout.gts_dir(synth_root, "Synth") / row["group"] / f"{row['stem']}.png")
        assert set(np.unique(mask)) <= {0, 255} and 0.01 < (mask > 0).mean() < 0.5
        image = io.read_bgr(layout.images_dir(synth_root, "Synth") / row["group"] / f"{row['stem']}.jpg")
        assert image.shape[:2] == mask.shape == (int(row["height"]), int(row["width"]))
