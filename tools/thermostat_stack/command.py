"""The ``thermostat up`` command, registered through the ``thermostat.commands`` entry points.

The module imports the stack at the top on purpose: ``thermostat.cli`` loads it only when this command
is asked for, and a missing ``stack`` extra then shows as a failed load that the CLI reports with the
extra to install.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thermostat_stack.ports import PortInUseError
from thermostat_stack.setup import SetupError, UpOptions
from thermostat_stack.trace import TraceError
from thermostat_stack.up import run_up


def up(  # noqa: PLR0917 (typer reads options from parameters)
    spec: Annotated[
        Path | None, typer.Option(help="RoutedModel to apply; examples/local-stack.yaml when unset.")
    ] = None,
    scenario: Annotated[str, typer.Option(help="Built-in load: burst or diurnal (ignored with --trace).")] = "burst",
    trace: Annotated[Path | None, typer.Option(help="Replay an Azure-format CSV trace instead of a scenario.")] = None,
    rate_scale: Annotated[
        float | None, typer.Option(help="Trace rate multiplier (>1 faster); default: 80% of measured capacity.")
    ] = None,
    trace_offset: Annotated[
        float, typer.Option(help="Start the replay this many seconds into the trace (trace time, before --rate-scale).")
    ] = 0.0,
    max_prompt_tokens: Annotated[int, typer.Option(help="Prompt length (cap for traces), tokens.")] = 48,
    max_tokens: Annotated[int, typer.Option(help="Generated tokens per request (cap for traces).")] = 24,
    duration: Annotated[float | None, typer.Option(help="Seconds of load; the scenario is sized to it.")] = None,
    report: Annotated[Path | None, typer.Option(help="Report directory; reports/up-<time> when unset.")] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Show the live view (rich).")] = True,
    kubeconfig: Annotated[Path | None, typer.Option(help="Where to write the kubeconfig (removed at exit).")] = None,
    api_port: Annotated[int, typer.Option(help="API server port on 127.0.0.1 (0: a free one).")] = 0,
    prometheus_port: Annotated[int, typer.Option(help="Prometheus port on 127.0.0.1 (0: a free one).")] = 0,
    start_delay: Annotated[float, typer.Option(help="Seconds standing in for a replica's image pull.")] = 10.0,
    capacity_requests: Annotated[int, typer.Option(help="Capacity: requests at T=1 and at T_min, alternating.")] = 8,
) -> None:
    """Run the whole loop on this machine: API server, Prometheus, runtime replicas, operator, load, report."""
    options = UpOptions(
        spec_file=spec, scenario=scenario, trace=trace, rate_scale=rate_scale, trace_offset_s=trace_offset,
        max_prompt_tokens=max_prompt_tokens, max_tokens=max_tokens, duration_s=duration, report_dir=report, live=live,
        kubeconfig=kubeconfig, api_port=api_port, prometheus_port=prometheus_port, start_delay_s=start_delay,
        capacity_requests=capacity_requests,
    )  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    try:
        asyncio.run(run_up(options, console))
    except (SetupError, TraceError, PortInUseError) as error:
        console.print(f"[bold red]thermostat up:[/] {error}", highlight=False)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        console.print("stopped; every process started was ended")
        raise typer.Exit(code=130) from None
