"""Command line of the runtime: ``thermostat-runtime serve | profile | train-router | replay``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Thermostat runtime: the routed model behind an OpenAI-compatible API.", no_args_is_help=True
)


@app.command()
def version() -> None:
    """Print the runtime's version."""
    from thermostat_runtime import __version__

    typer.echo(__version__)


def main() -> None:
    app()
