"""The `snapfit` Typer app, its console and logging; the command modules register their commands on it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from snapfit import contract

app = typer.Typer(
    help="snapfit: fashion visual search and virtual try-on, served by Triton.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)
DEFAULT_REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
DEFAULT_API_URL = f"http://localhost:{contract.API_PORT}"


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"snapfit {version('snapfit')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """snapfit: fashion visual search and virtual try-on, served by Triton."""


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    # third-party libraries (open_clip) log chatty INFO lines on the root logger: show only their warnings
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)
    for ours in ("export", "orchestrator", "benchmarks"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)

