"""``cosalbench models``: the registry of reference models -- what each is, what loads, what it reported.

Plain data, no torch: listing the zoo works without the ``models`` extra. ``predict MODEL`` and
``train-reference MODEL`` accept every name registered here (the torch module of each lives in
``reference_models.registry``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import click

from cosalbench.errors import CosalbenchError

EMAX_S_FMAX_MAE = ("Emax", "S", "Fmax", "MAE")


@dataclass(frozen=True)
class Reported:
    """Numbers a paper or release reports, with the protocol and training set they come from."""

    source: str
    protocol: str
    train_set: str
    metrics: tuple[str, ...]
    datasets: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class ModelCard:
    """One reference model of the zoo."""

    name: str
    title: str
    paper: str
    official_code: str
    backbone: str
    train_sets: tuple[str, ...]
    input_size: int
    checkpoints: tuple[str, ...]
    training: bool
    verification: str
    reported: tuple[Reported, ...] = field(default_factory=tuple)


_COSOD_SETS = ("CoCA", "CoSOD3k", "CoSal2015")


def cosod(source: str, train_set: str, rows: tuple[tuple[float, ...], ...]) -> Reported:
    """Emax / S / Fmax / MAE on CoCA, CoSOD3k, CoSal2015 under the eval-co-sod protocol."""
    return Reported(
        source, "eval-co-sod", train_set, EMAX_S_FMAX_MAE, dict(zip(_COSOD_SETS, rows, strict=True))
    )


MODEL_CARDS: dict[str, ModelCard] = {
    card.name: card
    for card in (
        ModelCard(
            name="gconet",
            title="GCoNet: group collaborative learning",
            paper="Fan et al., CVPR 2021",
            official_code="fanq15/GCoNet@1be4034",
            backbone="VGG16 (only conv5_3 trains)",
            train_sets=("DUTS_class",),
            input_size=224,
            checkpoints=(
                "final_gconet.pth (bare state dict; the unused VGG FC layers are dropped)",
                "checkpoint.pth of the release ({epoch, state_dict, scheduler})",
                "cosalbench final.pth / checkpoint.pth",
            ),
            training=True,
            verification="official key names and shapes; GAM against a line-by-line transcription (tests/test_gconet.py)",
            reported=(
                cosod(
                    "CVPR 2021 Table 2 (= GCoNet+ README TABLE 3)",
                    "DUTS_class",
                    (
                        (0.760, 0.673, 0.544, 0.105),
                        (0.860, 0.802, 0.777, 0.071),
                        (0.887, 0.845, 0.847, 0.068),
                    ),
                ),
            ),
        ),
        ModelCard(
            name="gconet_plus",
            title="GCoNet+: GCoNet with CEM (DB head), RACM and GST",
            paper="Zheng et al., TPAMI 2023",
            official_code="ZhengPeng7/GCoNet_plus@6adfe2a",
            backbone="VGG16-BN (frozen)",
            train_sets=("DUTS_class", "COCO-SEG"),
            input_size=256,
            checkpoints=(
                "ultimate_duts_cocoseg.pth, ultimate_duts_coco9k.pth, ultimate_cocoseg.pth, ultimate_coco9k.pth, "
                "ultimate.pth, ep*.pth (bare state dicts, strict)",
                "checkpoint.pth of the release ({epoch, state_dict, scheduler}); 'module.' prefixes stripped",
                "cosalbench final.pth / checkpoint.pth",
            ),
            training=True,
            verification=(
                "official code run on the same name-seeded weights (tests/test_gconet_plus.py): eval and train maps "
                "max|diff| 0.0 in float64 (3.5e-5 in float32 with the k=50 fallback), loss terms |diff| <= 4e-13, "
                "predicted PNGs 2/9976 pixels off by 1 grey level"
            ),
            reported=(
                cosod(
                    "GCoNet+ README TABLE 3 (checkpoint picked on the test sets)",
                    "DUTS_class + COCO-SEG",
                    (
                        (0.814, 0.738, 0.637, 0.081),
                        (0.901, 0.843, 0.834, 0.062),
                        (0.924, 0.881, 0.891, 0.056),
                    ),
                ),
                cosod(
                    "GCoNet+ README TABLE 3",
                    "DUTS_class",
                    (
                        (0.786, 0.691, 0.574, 0.113),
                        (0.881, 0.828, 0.807, 0.068),
                        (0.917, 0.875, 0.876, 0.054),
                    ),
                ),
            ),
        ),
        ModelCard(
            name="mccl",
            title="MCCL: memory-aided contrastive consensus learning (GCAM on PVTv2-B2)",
            paper="Zheng et al., AAAI 2023",
            official_code="ZhengPeng7/MCCL@40ad44c",
            backbone="PVTv2-B2 (plain torch)",
            train_sets=("DUTS_class", "COCO-SEG"),
            input_size=256,
            checkpoints=(
                "the release's bare state dicts (train.py's ep*.pth; strict, 416 keys); 'module.' prefixes stripped",
                "cosalbench final.pth / checkpoint.pth",
            ),
            training=False,
            verification=(
                "official code run on the same name-seeded weights (tests/test_mccl.py): eval logits max|diff| "
                "5.4e-14 in float64 (5.1e-5 in float32 vs the float64 release), train-mode forward 4.5e-14, "
                "predicted PNGs 3/15992 pixels off by 1 grey level"
            ),
            reported=(
                Reported(
                    "arXiv 2302.14485v2, Fig. 1 caption (CoSOD3k S only; Table 1 not transcribed here)",
                    "pysodmetrics",
                    "DUTS_class + COCO-SEG",
                    ("S",),
                    {"CoSOD3k": (0.860,)},
                ),
            ),
        ),
        ModelCard(
            name="rcgs",
            title="RCGS: robust co-saliency via group semantics (H-LRBP)",
            paper="Wang et al., AAAI 2019",
            official_code="none public (built from the paper; docs/rcgs.md)",
            backbone="VGG19",
            train_sets=("COCO-SEG",),
            input_size=224,
            checkpoints=("cosalbench final.pth / checkpoint.pth",),
            training=True,
            verification="no official code to compare with",
            reported=(
                Reported(
                    "GCAGC (CVPR 2020) Table 1",
                    "GCAGC's (AP, F-beta, S, MAE; F-beta variant unstated)",
                    "COCO-SEG",
                    ("AP", "Fbeta", "S", "MAE"),
                    {
                        "iCoseg": (0.8269, 0.7730, 0.7810, 0.0976),
                        "CoSal2015": (0.8573, 0.8097, 0.7959, 0.0999),
                        "COCO-SEG test": (0.7309, 0.6814, 0.7185, 0.1239),
                    },
                ),
            ),
        ),
        ModelCard(
            name="gicd",
            title="GICD: gradient-induced co-saliency detection (classification-guided gradient attention)",
            paper="Zhang et al., ECCV 2020",
            official_code="zzhanghub/gicd@b587591 (test code only)",
            backbone="VGG16 + ImageNet VGG16 co-classifier",
            train_sets=("DUTS_class",),
            input_size=224,
            checkpoints=(
                "gicd_ginet.pth (GINet's bare state dict, strict) + torchvision's ImageNet vgg16-397923af.pth for the "
                "co-classifier ($COSALBENCH_VGG16 or the torch hub cache, as the release's vgg16(pretrained=True))",
                "a whole GICD state dict (co_classifier.* + ginet.*)",
            ),
            training=False,
            verification=(
                "official code run on the same name-seeded weights (tests/test_gicd.py): maps max|diff| 0.0 in float64 "
                "(1.0e-5 in float32), CAM, co-coding and class gradient <= 3e-8, predicted PNGs within 1 grey level"
            ),
            reported=(
                cosod(
                    "GCoNet+ README TABLE 3 (GICD row)",
                    "DUTS_class",
                    (
                        (0.715, 0.658, 0.513, 0.126),
                        (0.848, 0.797, 0.770, 0.079),
                        (0.887, 0.844, 0.844, 0.071),
                    ),
                ),
            ),
        ),
        ModelCard(
            name="dcfm",
            title="DCFM: democratic prototype, self-contrastive learning and rank-boosted attention",
            paper="Yu et al., CVPR 2022",
            official_code="siyueyu/DCFM@05800b6",
            backbone="VGG16 (only conv5_3 trains)",
            train_sets=("COCO-SEG",),
            input_size=224,
            checkpoints=(
                "best_ep198_Smeasure0.7019.pth / dcfm.pth / model-*.pt (bare DCFMNet state dicts; the unused VGG "
                "FC layers are dropped, the rest loads strictly)",
                "checkpoint.pth of the release ({epoch, state_dict}); 'module.'/'dcfmnet.' prefixes stripped",
                "cosalbench final.pth / checkpoint.pth",
            ),
            training=True,
            verification=(
                "official code run on the same name-seeded weights (tests/test_dcfm.py): eval logits, side outputs "
                "and prototype max|diff| 0.0 in float64 (logits 0.0 in float32), train-mode loss terms and "
                "gradients equal in float64, training transform pixel-identical, predicted PNGs within 1 grey level"
            ),
            reported=(
                cosod(
                    "GCoNet+ README TABLE 3 (= the val_measures in DCFM's config.py)",
                    "COCO-SEG (DCFM README and train.py; GCoNet+'s table labels it Train-2)",
                    (
                        (0.783, 0.710, 0.598, 0.085),
                        (0.874, 0.810, 0.805, 0.067),
                        (0.892, 0.838, 0.856, 0.067),
                    ),
                ),
            ),
        ),
    )
}


def model_names() -> tuple[str, ...]:
    """Registered model names, in registry order."""
    return tuple(MODEL_CARDS)


def card(name: str) -> ModelCard:
    """The card of ``name`` (case-insensitive); unknown names raise CosalbenchError."""
    key = name.lower()
    if key not in MODEL_CARDS:
        raise CosalbenchError(
            None, f"unknown reference model {name!r}", f"choose one of {', '.join(MODEL_CARDS)}"
        )
    return MODEL_CARDS[key]


def format_summary(cards: list[ModelCard]) -> str:
    """One line per model: name, paper, backbone, training sets, input size, training support."""
    header = f"{'model':<12} {'paper':<26} {'backbone':<36} {'train sets':<24} {'size':>4}  train"
    lines = [header]
    for item in cards:
        sets = " + ".join(item.train_sets)
        training = "yes" if item.training else "no"
        lines.append(
            f"{item.name:<12} {item.paper:<26} {item.backbone:<36} {sets:<24} {item.input_size:>4}  {training}"
        )
    return "\n".join(lines)


def format_card(item: ModelCard) -> str:
    """Every field of one card, the reported numbers as small tables."""
    lines = [
        f"{item.name}: {item.title}",
        f"  paper:          {item.paper}",
        f"  official code:  {item.official_code}",
        f"  backbone:       {item.backbone}",
        f"  training sets:  {' + '.join(item.train_sets)}",
        f"  input size:     {item.input_size}",
        f"  training:       {'supported (cosalbench train-reference ' + item.name + ')' if item.training else 'no'}",
        f"  verification:   {item.verification}",
        "  checkpoints that load:",
        *[f"    - {text}" for text in item.checkpoints],
    ]
    for reported in item.reported:
        lines.append(
            f"  reported ({reported.source}; protocol {reported.protocol}; trained on {reported.train_set}):"
        )
        lines.append("    " + f"{'dataset':<14}" + "".join(f"{m:>8}" for m in reported.metrics))
        for dataset, values in reported.datasets.items():
            lines.append("    " + f"{dataset:<14}" + "".join(f"{v:>8.4g}" for v in values))
    return "\n".join(lines)


@click.command("models")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the cards as JSON.")
def models(names: tuple[str, ...], as_json: bool) -> None:
    """List the reference models (or show NAMES in full): paper, backbone, training sets, input size,
    checkpoints that load, training support, reported numbers with their protocol."""
    cards = [card(name) for name in names] if names else list(MODEL_CARDS.values())
    if as_json:
        click.echo(json.dumps([asdict(item) for item in cards], indent=2))
    elif names:
        click.echo("\n\n".join(format_card(item) for item in cards))
    else:
        click.echo(format_summary(cards))
        click.echo("\n'cosalbench models NAME' shows checkpoints, verification and reported numbers.")
