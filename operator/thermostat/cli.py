"""Command line of the operator side: ``thermostat crd | validate | ...``.

Each command imports what it needs when it runs, so ``thermostat validate`` works with the base
install and never pulls in Kopf or the Kubernetes client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Thermostat: keeps routed LLM inference inside its latency SLO and power budget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def crd() -> None:
    """Print the RoutedModel CustomResourceDefinition generated from the API models."""
    from thermostat.api.crd import render_crd_yaml

    typer.echo(render_crd_yaml(), nl=False)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="RoutedModel manifests (YAML, multi-document allowed).")],
) -> None:
    """Check RoutedModel manifests against the CRD (OpenAPI and CEL rules) and the API models."""
    from thermostat.api.manifests import DocumentReport, check_text
    from thermostat.api.validation import Problem

    reports: list[DocumentReport] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reports.append(DocumentReport(str(path), 0, problems=[Problem("", f"cannot read the file: {error}")]))
            continue
        reports.extend(check_text(text, str(path)))
    for report in reports:
        if report.valid:
            typer.echo(f"{report.label}: valid")
            continue
        typer.echo(f"{report.label}: {len(report.problems)} problem(s)")
        for problem in report.problems:
            typer.echo(f"  - {problem}")
    if not all(report.valid for report in reports):
        raise typer.Exit(code=1)


@app.command()
def operator(
    kubeconfig: Annotated[
        Path | None, typer.Option(help="kubeconfig file (default: in-cluster, then $KUBECONFIG or ~/.kube/config).")
    ] = None,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Namespace to watch (repeatable); all when omitted.")
    ] = None,
    prometheus_url: Annotated[
        str | None, typer.Option(help="Default Prometheus URL (THERMOSTAT_PROMETHEUS_URL).")
    ] = None,
) -> None:
    """Run the operator (Kopf) against a cluster or the emulated API server. Settings: THERMOSTAT_* variables."""
    import os

    if kubeconfig is not None:
        if not kubeconfig.is_file():
            typer.echo(f"kubeconfig {kubeconfig} does not exist: pass an existing file", err=True)
            raise typer.Exit(code=2)
        # Kopf's login and our client both read it from here.
        os.environ["KUBECONFIG"] = str(kubeconfig.resolve())
        os.environ["THERMOSTAT_KUBECONFIG"] = str(kubeconfig.resolve())
    if prometheus_url:
        os.environ["THERMOSTAT_PROMETHEUS_URL"] = prometheus_url
    if namespace:
        import json

        os.environ["THERMOSTAT_NAMESPACES"] = json.dumps(namespace)
    from thermostat.run import run_operator

    run_operator()


@app.command()
def apiserver(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port on 127.0.0.1 (0 picks a free one).")] = 0,
    kubeconfig: Annotated[
        Path, typer.Option(help="Where to write the kubeconfig for kubectl and the operator.")
    ] = Path("kubeconfig"),
    pod_ready_delay: Annotated[float, typer.Option(min=0.0, help="Seconds before a Pod turns Ready.")] = 1.0,
    audit_log: Annotated[Path | None, typer.Option(help="Append every served request here (JSON lines).")] = None,
) -> None:
    """Serve an emulated Kubernetes API (RoutedModel CRD, Deployments, Pods...) until interrupted."""
    import asyncio

    from thermostat.apiserver.cli import serve_forever

    asyncio.run(serve_forever(port=port, kubeconfig=kubeconfig, pod_ready_delay_s=pod_ready_delay, audit_log=audit_log))


@app.command()
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
    import asyncio

    from rich.console import Console

    from thermostat.stack.ports import PortInUseError
    from thermostat.stack.setup import SetupError, UpOptions
    from thermostat.stack.trace import TraceError
    from thermostat.stack.up import run_up

    options = UpOptions(
        spec_file=spec, scenario=scenario, trace=trace, rate_scale=rate_scale, trace_offset_s=trace_offset,
        max_prompt_tokens=max_prompt_tokens, max_tokens=max_tokens, duration_s=duration, report_dir=report, live=live,
        kubeconfig=kubeconfig, api_port=api_port, prometheus_port=prometheus_port, start_delay_s=start_delay,
        capacity_requests=capacity_requests,
    )  # fmt: skip
    import logging

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


@app.command()
def simulate(
    *,
    trace: Annotated[
        str,
        typer.Option(help="Trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens) or 'synthetic' for the built-in one."),
    ],
    spec: Annotated[
        Path, typer.Option(help="RoutedModel YAML whose spec (SLO, budget, quality, replicas) is simulated.")
    ],
    controller: Annotated[
        str, typer.Option(help="thermostat, hpa, hpa-tuned, keda, static, temperature-only, oracle, all.")
    ] = "all",
    profile: Annotated[Path | None, typer.Option(help="Routing profile JSON; the committed one when unset.")] = None,
    rate_scale: Annotated[float, typer.Option(help="Multiply the trace's request rate by this.")] = 1.0,
    perturb: Annotated[bool, typer.Option(help="Move the ground truth away from the law's assumptions.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of rate scaling, the synthetic trace and calibration.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write one plot per controller into this directory.")] = None,
) -> None:
    """What-if: replay a trace under a RoutedModel spec with our law and the baselines; print a table."""
    from thermostat.sim.cli import run_simulate

    code = run_simulate(
        trace=trace,
        spec_path=spec,
        controller=controller,
        profile_path=profile,
        rate_scale=rate_scale,
        perturb=perturb,
        seed=seed,
        json_out=json_out,
        plots=plots,
    )
    if code:
        raise typer.Exit(code=code)


def main() -> None:
    app()
