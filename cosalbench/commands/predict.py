"""``cosalbench predict MODEL``: one sub-command per model (torch models load lazily)."""

from __future__ import annotations

import click

from cosalbench.cli import LazyGroup

PREDICTORS: dict[str, str] = {
    "cbcs": "cosalbench.commands.cbcs:cbcs",
    "gconet": "cosalbench.commands.models:predict_gconet",
    "rcgs": "cosalbench.commands.models:predict_rcgs",
    "gconet_plus": "cosalbench.commands.models:predict_gconet_plus",
    "gicd": "cosalbench.commands.models:predict_gicd",
    "dcfm": "cosalbench.commands.models:predict_dcfm",
    "mccl": "cosalbench.commands.models:predict_mccl",
}


@click.group(cls=LazyGroup, lazy_commands=PREDICTORS)
def predict() -> None:
    """Write co-saliency maps for canonical datasets with a baseline or reference model."""
