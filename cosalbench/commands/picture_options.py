"""Options of the commands that draw images and maps: where the predictions and the data are."""

from __future__ import annotations

from pathlib import Path

import click

pred_root_option = click.option(
    "--pred-root",
    type=click.Path(path_type=Path),
    help="prediction folder given to 'cosalbench evaluate' (PRED/<method>/<Dataset>/...), for the maps",
)
data_root_option = click.option(
    "--data-root", type=click.Path(path_type=Path), help="data root [$COSALBENCH_DATA or ./data]"
)
