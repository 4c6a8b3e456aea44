"""The public CoSOD datasets cosalbench knows: canonical names, aliases, expected sizes, source layouts.

Counts and layouts come from the datasets' READMEs and the codebases that use them
(see ``docs/datasets.md``). A name the registry does not know is still usable as a dataset
folder name (``cosalbench standardize MySet ...``); it simply has no expected counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from cosalbench import layout

# The folder pairs (image sub-folder, mask sub-folder) the public sets ship in, in probing order.
IMAGE_BINARY = ("image", "binary")
IMAGE_GROUNDTRUTH = ("Image", "GroundTruth")
IMG_GT = ("img", "gt")
IMG_GT_224 = ("img_bilinear_224", "gt_bilinear_224")
KNOWN_LAYOUTS: tuple[tuple[str, str], ...] = (IMAGE_BINARY, IMAGE_GROUNDTRUTH, IMG_GT, IMG_GT_224)


@dataclass(frozen=True)
class DatasetInfo:
    """One known dataset: ``name`` is the canonical folder spelling used under the data root."""

    name: str
    aliases: tuple[str, ...]
    expected_groups: int | None
    expected_images: int | None
    layouts: tuple[tuple[str, str], ...]
    kind: str  # "test" or "train"
    notes: str = ""
    count_notes: str = ""  # why a download may legitimately differ from the expected counts

    def spellings(self) -> tuple[str, ...]:
        """The canonical name followed by every alias."""
        return (self.name, *self.aliases)


_DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        "CoCA",
        (),
        80,
        1295,
        (IMAGE_BINARY,),
        "test",
        "10 photos appear in two groups (same stem, different target); also ships bbox/ and instance/.",
    ),
    DatasetInfo(
        "CoSOD3k",
        ("CoSOD-3k",),
        160,
        3316,
        (IMAGE_GROUNDTRUTH,),
        "test",
        "also ships BoundingBox/ and SegmentationObject/.",
    ),
    DatasetInfo(
        "CoSal2015",
        ("Cosal2015", "CoSal-2015"),
        50,
        2015,
        (IMAGE_GROUNDTRUTH,),
        "test",
        "GCoNet and the DCFM README spell the folder Cosal2015.",
    ),
    DatasetInfo("iCoseg", ("iCoSeg",), 38, 643, (IMAGE_GROUNDTRUTH,), "test"),
    DatasetInfo(
        "MSRC",
        ("MSRC-V1",),
        7,
        233,
        (IMAGE_GROUNDTRUTH,),
        "test",
        "233 images per ICNet and the CoSOD3k README; CoADNet says 210 and some tables 240.",
        "some sources count 210 images (CoADNet) or 240 (MSRC-V1 in the CoSOD3k README's table)",
    ),
    DatasetInfo(
        "DUTS_class",
        ("DUTS-class", "DUTSclass"),
        291,
        8250,
        (IMG_GT,),
        "train",
        "groups are numeric ImageNet class ids (no zero padding).",
    ),
    DatasetInfo(
        "COCO9213",
        ("coco-9k", "COCO-9213", "COCO9213-os", "coco9k"),
        None,
        9213,
        (IMG_GT, IMG_GT_224),
        "train",
        "group count (65 in some texts) unconfirmed; ICNet's copy is resized to 224x224 "
        "(img_bilinear_224); COCO9213-os images are PNG; DCFM calls this set 'CoCo-SEG'.",
        "the group count is not known",
    ),
    DatasetInfo(
        "COCO-SEG",
        ("coco_seg", "COCOSEG"),
        78,
        200932,
        (),
        "train",
        "200,932 (category, image) pairs over 107,132 COCO train2017 images; "
        "build it with `cosalbench build-coco-seg`.",
    ),
    DatasetInfo(
        "COCO-SEG-val",
        ("coco_seg_val", "COCOSEG-val"),
        None,
        None,
        (),
        "test",
        "COCO val2017 with the COCO-SEG rule (about 8.5K pairs, inferred); built by `cosalbench build-coco-seg`.",
    ),
)

_BY_SPELLING: dict[str, DatasetInfo] = {
    spelling.casefold(): info for info in _DATASETS for spelling in info.spellings()
}


def all_datasets() -> tuple[DatasetInfo, ...]:
    """Every known dataset, test sets first, in a fixed order."""
    return _DATASETS


def lookup(name: str) -> DatasetInfo | None:
    """The dataset a name or alias refers to (case-insensitive), or None when it is unknown."""
    return _BY_SPELLING.get(name.strip().casefold())


def canonical_name(name: str) -> str:
    """The canonical spelling of a known dataset name, else ``name`` unchanged."""
    info = lookup(name)
    return info.name if info is not None else name


def dataset_folder_name(name: str) -> str:
    """The canonical name of a known dataset; an unknown name must be a plain folder name."""
    return layout.plain_name(canonical_name(name), "dataset name")
