"""The ``cosalbench`` command line: a click group whose commands load lazily.

Each command lives in ``cosalbench/commands/<name>.py`` as a thin click function; loading them
on demand keeps ``cosalbench --help`` fast and keeps torch out of every command but the model ones.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

import click

from cosalbench import __version__
from cosalbench.errors import CosalbenchError, Terminated, from_os_error, one_line

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
    "gallery": "cosalbench.commands.gallery:gallery",
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


RESUME_HINT = "(finished outputs are kept; rerun to resume)"


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` in the main thread for the block, so cleanups run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush into a closed pipe stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _fail(error: CosalbenchError) -> NoReturn:
    click.echo(f"cosalbench: error: {error}", err=True)
    sys.exit(error.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input ends with a one-line error and exit status 2.

    Ctrl-C exits 130 and SIGTERM 143, each with one line; a closed stdout (``| head``) ends quietly.
    """
    try:
        with _sigterm_raises():
            status = cli.main(args=argv, prog_name="cosalbench", standalone_mode=False)
            sys.stdout.flush()
    except CosalbenchError as exc:
        _fail(exc)
    except BrokenPipeError:  # the reader of stdout went away: stop as a killed-by-SIGPIPE tool does
        _silence_stdout()
        sys.exit(128 + signal.SIGPIPE)
    except OSError as exc:  # a full disk, a read-only folder, a file where a folder should be...
        _fail(from_os_error(exc))
    except click.ClickException as exc:  # a usage error: one line too, with where to find the usage
        context = getattr(exc, "ctx", None)
        where = f" (see '{context.command_path} --help')" if context is not None else ""
        click.echo(f"cosalbench: error: {one_line(exc.format_message())}{where}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C into Abort
        if isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated):
            click.echo(f"cosalbench: terminated {RESUME_HINT}", err=True)
            sys.exit(128 + signal.SIGTERM)
        click.echo(f"cosalbench: interrupted {RESUME_HINT}", err=True)
        sys.exit(128 + signal.SIGINT)
    if isinstance(status, int) and status != 0:
        sys.exit(status)


if __name__ == "__main__":
    main()
