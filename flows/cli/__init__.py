"""The ``stad`` command line (typer + rich).

Each command group lives in its own module with a ``register(app)`` function; heavy imports
(torch, prefect, zarr) happen inside the commands so ``--help`` stays fast. Expected errors
(``StadError``) end the process with exit code 1 and a one-line reason, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from stad_core.errors import StadError

app = typer.Typer(
    name="stad",
    help="Spatio-temporal action detection: datasets, feature banks, relation heads, AVA evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Spatio-temporal action detection: datasets, feature banks, relation heads, AVA evaluation."""


@app.command()
def version() -> None:
    """Print the installed stad version."""
    from stad_core import __version__

    typer.echo(__version__)


def _register_all() -> None:
    # Imported here (not at module top) so a broken command group names itself in the error.
    from flows.cli import bank, evaluate, run, synth, video

    for module in (synth, video, evaluate, bank, run):
        module.register(app)


_register_all()


def main(cli: typer.Typer | None = None, prog_name: str | None = None) -> None:
    """Run ``cli`` (default: the ``stad`` app): usage errors are click's; ``StadError`` becomes one
    line on stderr and exit status 1."""
    try:
        (cli or app)(prog_name=prog_name)
    except StadError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
