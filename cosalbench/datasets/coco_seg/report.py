"""The manifest rows, report document and printed summary of a build."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from cosalbench import __version__
from cosalbench.datasets.coco_seg import verify
from cosalbench.datasets.coco_seg.annotations import CocoAnnotations
from cosalbench.datasets.coco_seg.plan import SplitPlan, image_stem
from cosalbench.datasets.coco_seg.rule import GroupSelection, RuleOptions
from cosalbench.layout import CATEGORY_SEPARATOR

MANIFEST_COLUMNS = (
    "group",
    "category_id",
    "image_id",
    "stem",
    "width",
    "height",
    "n_instances",
    "n_crowd",
    "max_instance_area",
    "mask_pixels",
    "categories",
)


def manifest_rows(
    coco: CocoAnnotations,
    selection: GroupSelection,
    pixels: Mapping[tuple[int, int], int] | None = None,
    skip: frozenset[int] = frozenset(),
) -> list[list[Any]]:
    """One row per (group, image) in category id then image id order (``mask_pixels`` empty without pixels)."""
    rows = []
    for cid, ids in selection.pairs.items():
        for image_id in ids:
            if image_id in skip:
                continue
            image = coco.images[image_id]
            instances = coco.instances[(image_id, cid)]
            n_crowd = sum(instance.crowd for instance in instances)
            max_area = max(instance.area for instance in instances if not instance.crowd)
            categories = CATEGORY_SEPARATOR.join(selection.names[c] for c in selection.image_groups[image_id])
            mask_pixels = "" if pixels is None else pixels[(cid, image_id)]
            rows.append(
                [selection.names[cid], cid, image_id, image_stem(image_id), image.width, image.height,
                 len(instances), n_crowd, max_area, mask_pixels, categories]
            )  # fmt: skip
    return rows


def group_table(
    selection: GroupSelection, rows: Sequence[Sequence[Any]], with_published: bool
) -> dict[str, dict[str, Any]]:
    """Per-group summary: images by the rule, rows written, published size, mean mask fraction."""
    published = {cid: n for cid, _, n in verify.PUBLISHED_GROUPS}
    written: Counter[int] = Counter()
    fractions: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        written[row[1]] += 1
        if row[9] != "":
            fractions[row[1]].append(row[9] / (row[4] * row[5]))
    table = {}
    for cid, name in selection.names.items():
        expected = published.get(cid, 0) if with_published else None
        values = fractions.get(cid)
        table[name] = {
            "category_id": cid,
            "images": len(selection.pairs[cid]),
            "written": written[cid],
            "published": expected,
            "difference": None if expected is None else len(selection.pairs[cid]) - expected,
            "mean_mask_fraction": sum(values) / len(values) if values else None,
        }
    return table


def split_report(
    plan: SplitPlan, options: RuleOptions, link: str, rows: Sequence[Sequence[Any]], dry_run: bool
) -> dict[str, Any]:
    """The report document of one split (verification against the published list on train)."""
    selection = plan.selection
    is_train = plan.split == "train"
    digest = verify.pairs_sha256(selection.pairs)
    differences = verify.compare_with_published(selection, plan.coco.categories) if is_train else []
    matches = digest == verify.PUBLISHED_PAIRS_SHA256 if is_train else None
    if is_train:
        verification = verify.verification_message(
            bool(matches), selection, differences, len(plan.coco.images), options.is_reference()
        )
    else:
        verification = "no published list to compare with (val2017 under the train groups)"
    histogram = Counter(len(c) for c in selection.image_groups.values())
    return {
        "cosalbench": __version__,
        "dataset": plan.dataset,
        "split": plan.split,
        "dry_run": dry_run,
        "parameters": {**asdict(options), "link": link},
        "rule": options.describe(),
        "reference_rule": options.is_reference(),
        "annotation_file": str(plan.coco.path),
        "annotation_sha256": plan.coco.sha256,
        "annotated_images": len(plan.coco.images),
        "n_groups": len(selection.pairs),
        "n_pairs": selection.n_pairs,
        "n_images": len(selection.image_groups),
        "pairs_sha256": digest,
        "images_sha256": verify.images_sha256(selection.image_groups),
        "published": verify.published_summary() if is_train else None,
        "matches_published": matches,
        "verification": verification,
        "group_differences": differences,
        "dropped_groups": [
            {"category_id": cid, "group": plan.coco.categories[cid], "images": n}
            for cid, n in selection.dropped.items()
        ],
        "groups_per_image": {str(k): histogram[k] for k in sorted(histogram)},
        "groups": group_table(selection, rows, with_published=is_train),
        "missing_images": None,
        "n_missing_images": None,
    }


def format_summary(report: Mapping[str, Any]) -> str:
    """The one-screen text a build prints: counts, verification line, per-group table."""
    lines = [
        f"{report['dataset']} from {report['annotation_file']} ({report['annotated_images']:,} annotated images)"
        + (" [dry run]" if report["dry_run"] else ""),
        f"  rule: {report['rule']}",
        f"  {report['n_groups']} groups, {report['n_pairs']:,} pairs over {report['n_images']:,} images",
    ]
    if report["dropped_groups"]:
        dropped = ", ".join(f"{d['group']} ({d['images']})" for d in report["dropped_groups"])
        lines.append(f"  dropped under the size cut: {dropped}")
    lines.append(f"  pairs sha256 {report['pairs_sha256']}: {report['verification']}")
    if not report["dry_run"]:
        missing = report["n_missing_images"]
        lines.append(
            f"  masks for {report['n_pairs'] - report['n_skipped_pairs']:,} of {report['n_pairs']:,} pairs: "
            f"{report['masks_written']:,} written, {report['masks_kept']:,} kept from an earlier run; "
            f"images: {report['links_made']:,} placed ({report['parameters']['link']}); missing images: {missing:,}"
            + (f" (skipped {report['n_skipped_pairs']:,} pairs; listed in the report)" if missing else "")
        )
    if "manifest" in report:
        lines.append(f"  manifest: {report['manifest']}  report: {report['report']}")
    if "note" in report:
        lines.append(f"  note: {report['note']}")
    absent = [d for d in report["group_differences"] if d["group"] not in report["groups"]]
    if absent:
        lines.append(
            "  published groups absent here: "
            + ", ".join(f"{d['group']} ({d['published']:,})" for d in absent)
        )
    with_published = report["published"] is not None
    header = f"  {'id':>4}  {'group':<16} {'images':>8}"
    header += f" {'published':>10} {'diff':>8}" if with_published else ""
    lines.append(header + f" {'mask':>7}")
    for name, group in report["groups"].items():
        line = f"  {group['category_id']:>4}  {name:<16} {group['images']:>8,}"
        if with_published:
            line += f" {group['published']:>10,} {group['difference']:>+8,}"
        fraction = group["mean_mask_fraction"]
        lines.append(line + (f" {fraction:>7.1%}" if fraction is not None else f" {'-':>7}"))
    return "\n".join(lines)
