"""The ``stad`` command line (typer + rich).

Each command group lives in its own module with a ``register(app)`` function; heavy imports
(torch, prefect, zarr) happen inside the commands so ``--help`` stays fast. Expected errors
(``StadError``) end the process with exit code 1 and a one-line reason, never a traceback.
"""

from __future__ import annotations

import os
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


_show_traceback = False


@app.callback()
def _root(
    traceback: bool = typer.Option(False, "--traceback", envvar="STAD_TRACEBACK",
                                   help="On an error, print the full Python traceback too."),
) -> None:
    """Spatio-temporal action detection: datasets, feature banks, relation heads, AVA evaluation."""
    global _show_traceback
    _show_traceback = traceback


@app.command()
def version() -> None:
    """Print the installed stad version."""
    from stad_core import __version__

    typer.echo(__version__)


def _register_all() -> None:
    # Imported here (not at module top) so a broken command group names itself in the error.
    from flows.cli import bank, demo, evaluate, export, infer, models, run, synth, temporal, tubes, video, view

    # synth..run: data, evaluation, banks, stages; export/infer/view: a trained model on new videos and the
    # workspace viewer; tubes, temporal: the other task kinds' file commands; models: the backbone catalogue.
    for module in (synth, video, evaluate, bank, run, demo, export, infer, view, tubes, temporal, models):
        module.register(app)


_register_all()


def main(cli: typer.Typer | None = None, prog_name: str | None = None) -> None:
    """Run ``cli`` (default: the ``stad`` app): usage errors are click's; ``StadError`` becomes one
    line on stderr and exit status 1."""
    try:
        (cli or app)(prog_name=prog_name)
    except StadError as exc:
        if _show_traceback or os.environ.get("STAD_TRACEBACK"):
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
