"""``cosalbench train-reference MODEL`` and ``cosalbench predict MODEL``: thin wrappers over reference_models.

torch is imported only when one of these commands runs; without it they say how to install the extra.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from cosalbench.commands.zoo import model_names
from cosalbench.errors import CosalbenchError

MODEL_NAMES = model_names()
PROTOCOLS = ("eval-co-sod", "pysodmetrics", "cosal-matlab")


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        raise CosalbenchError(
            None, "the reference models need torch", "install the extra: pip install 'cosalbench[models]'"
        ) from exc


@click.command("train-reference")
@click.argument("model", type=click.Choice(MODEL_NAMES, case_sensitive=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--recipe", type=click.Path(path_type=Path), help="Recipe YAML (default: recipes/<model>.yaml)."
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    help="Canonical data root (else $COSALBENCH_DATA, ./data).",
)
@click.option("--train-set", help="Training set name (DUTS_class, COCO-SEG, COCO9213, synthetic, ...).")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/<model>).")
@click.option("--max-steps", type=int, help="Stop after this many optimiser steps in total.")
@click.option(
    "--backbone-weights", type=click.Path(path_type=Path), help="torchvision VGG ImageNet .pth file."
)
@click.option(
    "--no-pretrained", is_flag=True, help="Random-init backbone (results say backbone: random-init)."
)
@click.option("--device", help="cpu, cuda, cuda:N or auto (default from the recipe: auto).")
@click.option(
    "--resume", "resume_from", type=click.Path(path_type=Path), help="Continue from this checkpoint file."
)
@click.option("--restart", is_flag=True, help="Ignore an existing checkpoint in --out and start over.")
@click.option(
    "--seeds",
    metavar="K,K,...",
    help="One full training per seed into OUT/seed<k>/ (in turn), then OUT/seeds.json with every seed's figures.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_reference(
    model: str,
    overrides: tuple[str, ...],
    recipe: Path | None,
    data_root: Path | None,
    train_set: str | None,
    out: Path | None,
    max_steps: int | None,
    backbone_weights: Path | None,
    no_pretrained: bool,
    device: str | None,
    resume_from: Path | None,
    restart: bool,
    seeds: str | None,
    quiet: bool,
) -> None:
    """Train reference MODEL (any model of `cosalbench models` that trains) from a recipe; resumes from
    OUT/checkpoint.pth (or --resume FILE).

    KEY=VALUE pairs override recipe keys (dotted for nested ones: loss_weights.focal=100).
    """
    _require_torch()
    from reference_models.seeds import parse_seeds, train_seeds
    from reference_models.train import resolve_recipe, train

    flags = {
        "data_root": str(data_root) if data_root else None,
        "train_set": train_set,
        "max_steps": max_steps,
        "backbone_weights": str(backbone_weights) if backbone_weights else None,
        "pretrained": False if no_pretrained else None,
        "device": device,
    }
    cfg = resolve_recipe(model.lower(), recipe, list(overrides), flags)
    if resume_from and restart:
        raise CosalbenchError(resume_from, "--resume and --restart exclude each other")
    run = out or Path("runs") / model.lower()
    if seeds is not None:
        if any(text.partition("=")[0].strip() == "seed" for text in overrides):
            raise CosalbenchError(None, "--seeds and a seed=K override exclude each other", "drop seed=K")
        if resume_from:
            raise CosalbenchError(
                resume_from, "--seeds and --resume exclude each other", "each OUT/seed<k>/ resumes by itself"
            )
        summary = train_seeds(cfg, run, parse_seeds(seeds), resume=not restart, progress=not quiet)
    else:
        summary = train(cfg, run, resume=not restart, progress=not quiet, resume_from=resume_from)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary per run, not one per torchrun rank
        click.echo(json.dumps(summary, indent=2))


def _predict_command(model: str) -> click.Command:
    """The ``cosalbench predict <model>`` command (one implementation for every reference model)."""

    @click.command(model, help=f"Write {model} co-saliency maps for canonical test sets from a checkpoint.")
    @click.option(
        "--checkpoint",
        required=True,
        type=click.Path(path_type=Path),
        help="final.pth, checkpoint.pth or an official state dict.",
    )
    @click.option(
        "--dataset",
        "datasets",
        required=True,
        multiple=True,
        help="Test set (repeatable): CoCA, CoSOD3k, CoSal2015, ...",
    )
    @click.option(
        "--data-root",
        type=click.Path(path_type=Path),
        help="Canonical data root (else $COSALBENCH_DATA, ./data).",
    )
    @click.option(
        "--out",
        required=True,
        type=click.Path(path_type=Path),
        help="Prediction root: OUT/<method>/<Dataset>/<group>/<stem>.png.",
    )
    @click.option("--method", help=f"Method folder name (default {model}).")
    @click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
    @click.option(
        "--max-group-size", type=int, help="Predict larger groups in chunks sharing the group context."
    )
    @click.option("--overwrite", is_flag=True, help="Rewrite groups whose maps already exist.")
    @click.option("--bf16", is_flag=True, help="bf16 autocast on CUDA (faster; published numbers are fp32).")
    @click.option(
        "--skip-unreadable",
        is_flag=True,
        help="Skip (and count) unreadable input images instead of stopping at the first one.",
    )
    @click.option(
        "--evaluate", "run_evaluation", is_flag=True, help="Evaluate the maps afterwards and print the table."
    )
    @click.option(
        "--protocol",
        type=click.Choice(PROTOCOLS),
        default="eval-co-sod",
        show_default=True,
        help="Metric protocol for --evaluate (eval-co-sod is the one of GCoNet's paper).",
    )
    @click.option(
        "--results",
        type=click.Path(path_type=Path),
        default=Path("results"),
        show_default=True,
        help="Where --evaluate writes its result documents.",
    )
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def command(
        checkpoint: Path,
        datasets: tuple[str, ...],
        data_root: Path | None,
        out: Path,
        method: str | None,
        device: str,
        max_group_size: int | None,
        overwrite: bool,
        bf16: bool,
        skip_unreadable: bool,
        run_evaluation: bool,
        protocol: str,
        results: Path,
        quiet: bool,
    ) -> None:
        _require_torch()
        from cosalbench.metrics.evaluate import evaluate_predictions
        from reference_models.predict import format_table, predict_datasets

        summary = predict_datasets(
            checkpoint,
            model,
            datasets,
            data_root,
            out,
            method,
            device,
            max_group_size,
            overwrite,
            not quiet,
            bf16,
            skip_unreadable,
        )
        for name in summary["predicted"]:
            counts = summary["datasets"][name]
            skipped = f", {counts['unreadable']} unreadable skipped" if counts["unreadable"] else ""
            click.echo(
                f"{summary['method']} {name}: {counts['maps']} of {counts['images']} maps "
                f"({counts['written']} written, {counts['kept']} kept{skipped})"
            )
        click.echo(f"backbone: {summary['backbone']}")
        if run_evaluation:
            documents = evaluate_predictions(
                out / summary["method"],
                summary["predicted"],
                data_root=data_root,
                protocol=protocol,
                out=results,
                metadata={"backbone": summary["backbone"]},
            )
            click.echo(f"protocol: {protocol}")
            click.echo(format_table(documents))

    return command


predict_gconet = _predict_command("gconet")
predict_rcgs = _predict_command("rcgs")
predict_gconet_plus = _predict_command("gconet_plus")
predict_gicd = _predict_command("gicd")
predict_dcfm = _predict_command("dcfm")
predict_mccl = _predict_command("mccl")
