"""The ``cosalbench`` command line: a click group whose commands load lazily.

Each command lives in ``cosalbench/commands/<name>.py`` as a thin click function; loading them
on demand keeps ``cosalbench --help`` fast and keeps torch out of every command but the model ones.
"""

from __future__ import annotations

import importlib
import sys

import click

from cosalbench import __version__
from cosalbench.errors import CosalbenchError, from_os_error

# command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "demo": "cosalbench.commands.demo:demo",
    "evaluate": "cosalbench.commands.evaluate:evaluate",
    "datasets": "cosalbench.commands.datasets:datasets",
    "standardize": "cosalbench.commands.standardize:standardize",
    "validate": "cosalbench.commands.standardize:validate",
    "export": "cosalbench.commands.standardize:export",
    "build-coco-seg": "cosalbench.commands.coco_seg:build_coco_seg",
    "train-reference": "cosalbench.commands.models:train_reference",
    "predict": "cosalbench.commands.predict:predict",
    "report": "cosalbench.commands.report:report",
    "plot": "cosalbench.commands.report:plot",
    "compare": "cosalbench.commands.report:compare",
    "models": "cosalbench.commands.zoo:models",
    "profile": "cosalbench.commands.profile:profile",
}


def load_attribute(spec: str) -> object:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, attribute = spec.split(":")
    return getattr(importlib.import_module(module_name), attribute)


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is used or listed."""

    def __init__(self, *args: object, lazy_commands: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            return load_attribute(self.lazy_commands[cmd_name])  # type: ignore[return-value]
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cosalbench")
def cli() -> None:
    """cosalbench: co-saliency datasets, exact and fast metrics, reference models and reports."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input ends with a one-line error and exit status 2."""
    try:
        status = cli.main(args=argv, prog_name="cosalbench", standalone_mode=False)
    except CosalbenchError as exc:
        click.echo(f"cosalbench: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a full disk, a read-only folder, a file where a folder should be...
        error = from_os_error(exc)
        click.echo(f"cosalbench: error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("cosalbench: interrupted (finished outputs are kept; rerun to resume)", err=True)
        sys.exit(130)
    if isinstance(status, int) and status != 0:
        sys.exit(status)


if __name__ == "__main__":
    main()
