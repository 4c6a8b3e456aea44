"""``cosalbench datasets``: the known datasets, and which are present under the data root."""

from __future__ import annotations

import json

import click

from cosalbench.datasets.validate import status_table


def _cell(value: object) -> str:
    if value is None:
        return "?"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@click.command()
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Canonical data root (default: $COSALBENCH_DATA, else ./data).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def datasets(data_root: str | None, as_json: bool) -> None:
    """List the known CoSOD datasets, their expected sizes and their status under the data root."""
    entries = status_table(data_root)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    header = ("dataset", "aliases", "kind", "groups", "images", "status", "found")
    table = [header]
    for e in entries:
        found = "" if e["images"] is None else f"{_cell(e['images'])} in {_cell(e['groups'])} groups"
        name = e["name"] if e["folder"] == e["name"] else f"{e['name']} ({e['folder']}/)"
        table.append(
            (
                name,
                ", ".join(e["aliases"]) or "-",
                e["kind"] or "-",
                _cell(e["expected_groups"]),
                _cell(e["expected_images"]),
                e["status"],
                found,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
