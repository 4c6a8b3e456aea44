"""Fake downloads of the public CoSOD sets, in their distributed layouts and with their quirks.

Imported by the other ``test_standardize_*`` modules; the tests here check the fakes themselves
(a quirk that is not really in the fake would make the standardize tests vacuous).
"""

from __future__ import annotations

import hashlib
import io as bytes_io
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cosalbench import layout
from cosalbench.datasets import registry

HEIGHT, WIDTH = 24, 32
Key = tuple[str, str]


@dataclass
class Fake:
    """A fake download and what standardize must make of it (paths relative to ``src``)."""

    src: Path
    name: str
    pairs: dict[Key, tuple[Path, Path]] = field(default_factory=dict)
    images_without_masks: list[str] = field(default_factory=list)
    masks_without_images: list[str] = field(default_factory=list)
    system_files: list[str] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)
    converted: dict[Key, str] = field(default_factory=dict)  # key -> "<format>/<mode>"
    size_mismatches: dict[Key, str] = field(default_factory=dict)  # key -> mask "WxH"
    empty: list[Key] = field(default_factory=list)
    faint: list[Key] = field(default_factory=list)
    exif: dict[Key, int] = field(default_factory=dict)  # key -> EXIF orientation
    unreadable: list[str] = field(default_factory=list)  # image files of pairs that cannot be decoded
    conflicts: list[dict[str, str]] = field(default_factory=list)  # {"kept": rel, "ignored": rel}
    ungrouped: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.src).as_posix()


def picture(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A smooth RGB test picture (uint8, H x W x 3)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = rng.integers(40, 200, size=3)
    image = base + 2.0 * np.stack([xs, ys, xs + ys], axis=-1) + rng.normal(0, 4, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def shape_mask(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A 0/255 ellipse mask (uint8, H x W)."""
    rng = np.random.default_rng(seed + 1000)
    mask = np.zeros((height, width), np.uint8)
    centre = (int(rng.integers(10, width - 10)), int(rng.integers(8, height - 8)))
    cv2.ellipse(mask, centre, (int(rng.integers(4, 9)), int(rng.integers(3, 7))), 0, 0, 360, 255, -1)
    return mask


def save(path: Path, image: Image.Image, fmt: str, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **options)
    return path


def add_pair(
    fake: Fake,
    image_dir: Path,
    mask_dir: Path,
    group: str,
    stem: str,
    seed: int,
    image_ext: str = ".jpg",
    mask: Image.Image | None = None,
    mask_ext: str = ".png",
) -> None:
    """Write one RGB JPEG (or PNG when ``image_ext`` says so) and its mask; record the pair."""
    rgb = Image.fromarray(picture(seed))
    fmt = "PNG" if image_ext.lower() == ".png" else "JPEG"
    image_path = save(image_dir / group / f"{stem}{image_ext}", rgb, fmt, quality=90)
    if fmt == "PNG":
        fake.converted[(group, stem)] = "PNG/RGB"
    mask = mask if mask is not None else Image.fromarray(shape_mask(seed))
    mask_fmt = "JPEG" if mask_ext.lower() in (".jpg", ".jpeg") else "PNG"
    mask_path = save(mask_dir / group / f"{stem}{mask_ext}", mask, mask_fmt, quality=60)
    fake.pairs[(group, stem)] = (image_path, mask_path)


def touch(fake: Fake, path: Path, data: bytes = b"junk", kind: str = "system") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    (fake.system_files if kind == "system" else fake.other_files).append(fake.rel(path))


# masks with hand-picked grey values: the > 128 rule decides every pixel
GREY_LEVELS = np.array([0, 1, 100, 127, 128, 129, 130, 200, 254, 255], np.uint8)


def grey_level_mask() -> np.ndarray:
    """A mask whose rows cycle through GREY_LEVELS (so 128 -> 0 and 129 -> 255 both occur)."""
    return np.resize(GREY_LEVELS, (HEIGHT, WIDTH)).astype(np.uint8)


def make_coca(tmp: Path) -> Fake:
    """CoCA: ``<download>/CoCA/image|binary``, groups with spaces/capitals, numeric stems, strays."""
    fake = Fake(tmp / "download", "CoCA")
    images, masks = fake.src / "CoCA" / "image", fake.src / "CoCA" / "binary"
    add_pair(fake, images, masks, "Accordion", "51499", 1)
    add_pair(fake, images, masks, "Accordion", "186605", 2, image_ext=".JPG")
    add_pair(fake, images, masks, "alarm clock", "691609", 3, mask=Image.fromarray(grey_level_mask()))
    add_pair(fake, images, masks, "alarm clock", "7", 4)
    add_pair(fake, images, masks, "Yellow duck", "691609", 5)  # same photo id as in "alarm clock"
    add_pair(
        fake, images, masks, "Yellow duck", "8", 6, mask=Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8))
    )
    fake.empty.append(("Yellow duck", "8"))
    lonely_image = save(images / "Yellow duck" / "999.jpg", Image.fromarray(picture(9)), "JPEG")
    fake.images_without_masks.append(fake.rel(lonely_image))
    lonely_mask = save(masks / "alarm clock" / "555.png", Image.fromarray(shape_mask(7)), "PNG")
    fake.masks_without_images.append(fake.rel(lonely_mask))
    touch(fake, images / "Accordion" / "Thumbs.db")
    touch(fake, images / ".DS_Store")
    touch(fake, masks / "Accordion" / "._51499.png")
    macosx = images / "__MACOSX"  # a folder in macOS archives: listed as one entry, never entered
    (macosx / "Accordion").mkdir(parents=True)
    (macosx / "Accordion" / "._51499.jpg").write_bytes(b"apple double")
    fake.system_files.append(fake.rel(macosx))
    bbox = fake.src / "CoCA" / "bbox" / "Accordion" / "51499.txt"  # outside the two trees: not scanned
    bbox.parent.mkdir(parents=True)
    bbox.write_text("1 2 3 4\n")
    return fake


def cmyk_jpeg(seed: int) -> Image.Image:
    return Image.fromarray(picture(seed)).convert("CMYK")


def make_cosod3k(tmp: Path) -> Fake:
    """CoSOD3k: ``CoSOD3k/Image|GroundTruth``; CMYK JPEG, ``.jpeg``, size mismatch, 1-bit and palette masks."""
    fake = Fake(tmp / "CoSOD3k", "CoSOD3k")
    images, masks = fake.src / "Image", fake.src / "GroundTruth"
    add_pair(fake, images, masks, "axe", "ILSVRC2012_val_00001390", 11)
    save(images / "axe" / "ILSVRC2012_val_00001391.jpg", cmyk_jpeg(12), "JPEG", quality=92)
    save(masks / "axe" / "ILSVRC2012_val_00001391.png", Image.fromarray(shape_mask(12)), "PNG")
    fake.pairs[("axe", "ILSVRC2012_val_00001391")] = (
        images / "axe" / "ILSVRC2012_val_00001391.jpg",
        masks / "axe" / "ILSVRC2012_val_00001391.png",
    )
    fake.converted[("axe", "ILSVRC2012_val_00001391")] = "JPEG/CMYK"
    add_pair(fake, images, masks, "axe", "n0001", 13, image_ext=".jpeg")
    one_bit = Image.fromarray(shape_mask(14)).convert("1")
    add_pair(fake, images, masks, "banana", "b1", 14, mask=one_bit)
    palette = Image.fromarray((shape_mask(15) > 0).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    add_pair(fake, images, masks, "banana", "b2", 15, mask=palette)
    transposed = Image.fromarray(shape_mask(16, WIDTH, HEIGHT))  # 24 wide, 32 high
    add_pair(fake, images, masks, "banana", "b3", 16, mask=transposed)
    fake.size_mismatches[("banana", "b3")] = f"{HEIGHT}x{WIDTH}"
    label_map = Image.fromarray((shape_mask(17) > 0).astype(np.uint8))  # 0/1 values: empty after > 128
    add_pair(fake, images, masks, "banana", "b4", 17, mask=label_map)
    fake.empty.append(("banana", "b4"))
    fake.faint.append(("banana", "b4"))
    return fake


def make_cosal2015(tmp: Path) -> Fake:
    """Cosal2015 spelled so on disk; JPEG-artefacted ``.jpg`` masks, a greyscale JPEG, an RGB mask."""
    fake = Fake(tmp / "dl", "CoSal2015")
    images, masks = fake.src / "Cosal2015" / "Image", fake.src / "Cosal2015" / "GroundTruth"
    add_pair(fake, images, masks, "aeroplane", "aeroplane_001", 21, mask_ext=".jpg")
    add_pair(fake, images, masks, "aeroplane", "aeroplane_002", 22, mask_ext=".jpg")
    grey_path = save(
        images / "baseball" / "baseball_001.jpg", Image.fromarray(picture(23)).convert("L"), "JPEG"
    )
    mask_path = save(masks / "baseball" / "baseball_001.png", Image.fromarray(shape_mask(23)), "PNG")
    fake.pairs[("baseball", "baseball_001")] = (grey_path, mask_path)
    fake.converted[("baseball", "baseball_001")] = "JPEG/L"
    colour = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    colour[shape_mask(24) > 0] = (255, 255, 255)
    colour[:3, :5] = (200, 30, 30)  # reddish: luma 0.299*200+0.587*30+0.114*30 = 81 -> background
    add_pair(fake, images, masks, "baseball", "baseball_002", 24, mask=Image.fromarray(colour))
    return fake


def make_clean(tmp: Path, name: str = "Clean") -> Fake:
    """An unregistered, quirk-free set in ``Image/GroundTruth`` (standardize exits 0 on it)."""
    fake = Fake(tmp / name, name)
    images, masks = fake.src / "Image", fake.src / "GroundTruth"
    for g, group in enumerate(("red disc", "blue square")):
        for i in range(3):
            add_pair(fake, images, masks, group, f"{i:04d}", 100 + 10 * g + i)
    return fake


def make_icoseg(tmp: Path) -> Fake:
    """iCoseg in an ``iCoSeg/Image|GroundTruth`` folder: clean except its size vs the registry."""
    fake = Fake(tmp / "downloads", "iCoseg")
    images, masks = fake.src / "iCoSeg" / "Image", fake.src / "iCoSeg" / "GroundTruth"
    for g, group in enumerate(("Kite Kid", "cheetah")):
        for i in range(2):
            add_pair(fake, images, masks, group, f"{group.split()[0].lower()}_{i}", 200 + 10 * g + i)
    return fake


def make_duts_class(tmp: Path) -> Fake:
    """DUTS_class: ``DUTS_class/img|gt`` with numeric group names."""
    fake = Fake(tmp / "DUTS_class", "DUTS_class")
    images, masks = fake.src / "img", fake.src / "gt"
    add_pair(fake, images, masks, "1", "ILSVRC2012_test_00043095", 31)
    add_pair(fake, images, masks, "1", "sun_aaprbdflvfpqqmzv", 32)
    add_pair(fake, images, masks, "951", "n04285008_8668", 33)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW": OpenCV applies it when reading, Pillow does not
    rotated = save(images / "951" / "n04285008_9000.jpg", Image.fromarray(picture(34)), "JPEG", exif=exif)
    rotated_mask = save(masks / "951" / "n04285008_9000.png", Image.fromarray(shape_mask(34)), "PNG")
    fake.pairs[("951", "n04285008_9000")] = (rotated, rotated_mask)
    fake.exif[("951", "n04285008_9000")] = 6
    cover = save(images / "cover.jpg", Image.fromarray(picture(35)), "JPEG")
    fake.ungrouped.append(fake.rel(cover))
    checkpoint = save(images / ".ipynb_checkpoints" / "x.jpg", Image.fromarray(picture(36)), "JPEG")
    fake.system_files.append(fake.rel(checkpoint.parent))  # a hidden folder is not a group
    return fake


def make_coco9213(tmp: Path) -> Fake:
    """COCO9213-os: ``img|gt`` with PNG images and a stray text file inside a group."""
    fake = Fake(tmp / "data", "COCO9213")
    images, masks = fake.src / "COCO9213-os" / "img", fake.src / "COCO9213-os" / "gt"
    add_pair(fake, images, masks, "airplane", "000000000036", 41, image_ext=".png")
    add_pair(fake, images, masks, "airplane", "000000000077", 42, image_ext=".png")
    add_pair(fake, images, masks, "bear", "000000000086", 43)
    ignored = save(images / "bear" / "000000000086.png", Image.fromarray(picture(44)), "PNG")
    fake.conflicts.append(
        {"kept": fake.rel(fake.pairs[("bear", "000000000086")][0]), "ignored": fake.rel(ignored)}
    )
    touch(fake, images / "bear" / "list.txt", b"000000000086\n", kind="other")
    whole = bytes_io.BytesIO()
    Image.fromarray(picture(45)).save(whole, "JPEG")
    truncated = images / "bear" / "000000000099.jpg"
    truncated.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    save(masks / "bear" / "000000000099.png", Image.fromarray(shape_mask(45)), "PNG")
    fake.unreadable.append(fake.rel(truncated))
    return fake


MAKERS = {
    "CoCA": make_coca,
    "CoSOD3k": make_cosod3k,
    "CoSal2015": make_cosal2015,
    "iCoseg": make_icoseg,
    "DUTS_class": make_duts_class,
    "COCO9213": make_coco9213,
}


def test_fake_quirks_are_real(tmp_path: Path) -> None:
    cosod = make_cosod3k(tmp_path)
    cmyk_path, _ = cosod.pairs[("axe", "ILSVRC2012_val_00001391")]
    with Image.open(cmyk_path) as image:
        assert (image.format, image.mode) == ("JPEG", "CMYK")
    with Image.open(cosod.pairs[("banana", "b1")][1]) as image:
        assert image.mode == "1"
    with Image.open(cosod.pairs[("banana", "b2")][1]) as image:
        assert image.mode == "P"
    cosal = make_cosal2015(tmp_path)
    jpeg_mask = cv2.imread(str(cosal.pairs[("aeroplane", "aeroplane_001")][1]), cv2.IMREAD_GRAYSCALE)
    assert ((jpeg_mask > 0) & (jpeg_mask < 255)).any(), "the JPEG mask should have grey edges"
    with Image.open(cosal.pairs[("baseball", "baseball_001")][0]) as image:
        assert image.mode == "L"
    coca = make_coca(tmp_path)
    assert coca.pairs[("Accordion", "186605")][0].suffix == ".JPG"
    assert (coca.src / "CoCA" / "image" / "__MACOSX" / "Accordion" / "._51499.jpg").is_file()
    grey = cv2.imread(str(coca.pairs[("alarm clock", "691609")][1]), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(grey)) == set(GREY_LEVELS.tolist())


def grey(path: Path) -> np.ndarray:
    """A source mask as the evaluators read it (OpenCV, IMREAD_GRAYSCALE)."""
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_GRAYSCALE)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_flags(fake: Fake, key: Key) -> set[str]:
    """The manifest flags standardize must give a pair, from what the fake put in it."""
    flags = set()
    if key in fake.converted:
        flags.add(f"converted={fake.converted[key]}")
    if key in fake.exif:
        flags.add(f"exif_orientation={fake.exif[key]}")
    source = grey(fake.pairs[key][1])
    changed = int(np.count_nonzero((source != 0) & (source != 255)))
    if changed:
        flags.add(f"binarized={changed}")
    if key in fake.empty:
        flags.add("empty")
    if key in fake.faint:
        flags.add("faint")
    if key in fake.size_mismatches:
        flags.add(f"size_mismatch={fake.size_mismatches[key]}")
    if sum(stem == key[1] for _, stem in fake.pairs) > 1:
        flags.add("duplicate_stem")
    return flags


def check_outputs(fake: Fake, data_root: Path, link: str | None = "hardlink") -> None:
    """Every output file and manifest row of a standardized fake, checked against its source.

    ``link=None`` checks the bytes of kept JPEGs but not how they are linked.
    """
    name = fake.name
    pairs = fake.pairs
    rows = {(r["group"], r["stem"]): r for r in layout.read_manifest(data_root, name)}
    assert list(rows) == sorted(pairs)
    images_root, gts_root = data_root / "images" / name, data_root / "gts" / name
    found = sorted(p.relative_to(data_root).as_posix() for p in data_root.glob(f"*/{name}/*/*"))
    wanted = sorted(
        f"{top}/{name}/{group}/{stem}{suffix}"
        for group, stem in pairs
        for top, suffix in (("images", ".jpg"), ("gts", ".png"))
    )
    assert found == wanted
    for key, (image_src, mask_src) in pairs.items():
        group, stem = key
        image_out, mask_out = images_root / group / f"{stem}.jpg", gts_root / group / f"{stem}.png"
        with Image.open(image_src) as source:
            width, height = source.size
            source_rgb = np.asarray(source.convert("RGB"), np.int16)
        if key in fake.converted:
            assert not image_out.is_symlink()
            with Image.open(image_out) as out:
                assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (width, height))
                assert np.abs(np.asarray(out, np.int16) - source_rgb).mean() < 3.0
        else:
            assert image_out.read_bytes() == image_src.read_bytes()
            if link is not None:
                assert image_out.is_symlink() == (link == "symlink")
                assert os.path.samefile(image_out, image_src) == (link != "copy")
        with Image.open(mask_out) as out:
            assert (out.format, out.mode) == ("PNG", "L")
            mask = np.asarray(out)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        np.testing.assert_array_equal(mask, np.where(grey(mask_src) > 128, 255, 0))
        row = rows[key]
        assert row["image_source"] == fake.rel(image_src) and row["mask_source"] == fake.rel(mask_src)
        assert (int(row["width"]), int(row["height"])) == (width, height)
        assert row["mask_fg_fraction"] == f"{np.count_nonzero(mask) / mask.size:.6f}"
        assert row["image_sha256"] == sha256(image_out) and row["mask_sha256"] == sha256(mask_out)
        assert set(filter(None, row["flags"].split(";"))) == expected_flags(fake, key)
        assert row["categories"] == group
        for column, path in (("image_source_stamp", image_src), ("mask_source_stamp", mask_src)):
            assert row[column] == f"{path.stat().st_size}:{path.stat().st_mtime_ns}"


def check_report(fake: Fake, report: dict, info: registry.DatasetInfo | None) -> None:
    """Every field of a standardize report, against what the fake holds."""
    pairs = sorted(fake.pairs)
    item = "/".join
    assert report["dataset"] == fake.name
    assert report["counts"] == {
        "groups": len({g for g, _ in pairs}),
        "images": len(pairs),
        "source_pairs": len(pairs) + len(fake.unreadable),
        "expected_groups": None if info is None else info.expected_groups,
        "expected_images": None if info is None else info.expected_images,
        "source_images": len(pairs) + len(fake.images_without_masks) + len(fake.unreadable),
        "source_masks": len(pairs) + len(fake.masks_without_images) + len(fake.unreadable),
        "converted_images": len(fake.converted),
        "binarized_masks": sum(
            any(f.startswith("binarized") for f in expected_flags(fake, k)) for k in pairs
        ),
    }
    assert report["images_without_masks"] == fake.images_without_masks
    assert report["masks_without_images"] == fake.masks_without_images
    assert [u["path"] for u in report["unreadable"]] == fake.unreadable
    assert all("unreadable image" in u["problem"] for u in report["unreadable"])
    assert report["size_mismatches"] == [
        {"item": item(k), "image": f"{WIDTH}x{HEIGHT}", "mask": v}
        for k, v in sorted(fake.size_mismatches.items())
    ]
    assert report["empty_masks"] == [item(k) for k in sorted(fake.empty)]
    assert report["faint_masks"] == [item(k) for k in sorted(fake.faint)]
    assert report["conflicting_files"] == fake.conflicts
    assert report["ungrouped_files"] == fake.ungrouped
    binarized = {k: expected_flags(fake, k) for k in pairs}
    assert report["non_binary_masks"] == [
        {"item": item(k), "pixels_changed": int(f.split("=")[1])}
        for k in pairs
        for f in binarized[k]
        if f.startswith("binarized=")
    ]
    assert report["converted_images"] == [
        {"item": item(k), "from": v} for k, v in sorted(fake.converted.items())
    ]
    assert report["exif_rotated_images"] == [item(k) for k in sorted(fake.exif)]
    assert sorted(report["system_files_skipped"]) == sorted(fake.system_files)
    assert report["other_files_skipped"] == fake.other_files
    stems: dict[str, list[str]] = {}
    for group, stem in pairs:
        stems.setdefault(stem, []).append(group)
    assert report["duplicate_stems"] == {s: g for s, g in sorted(stems.items()) if len(g) > 1}
    problems = [
        fake.images_without_masks,
        fake.masks_without_images,
        fake.unreadable,
        fake.size_mismatches,
        fake.empty,
        fake.faint,
        fake.conflicts,
        fake.ungrouped,
    ]
    counts_differ = info is not None and (
        (info.expected_groups is not None and info.expected_groups != report["counts"]["groups"])
        or (info.expected_images is not None and info.expected_images != len(pairs))
    )
    assert len(report["warnings"]) == sum(bool(p) for p in problems) + counts_differ
    expected_status = ("usable with warnings", 3) if report["warnings"] else ("complete", 0)
    assert (report["status"], report["exit_code"]) == expected_status
