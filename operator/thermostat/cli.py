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
def apiserver(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0 picks a free one).")] = 0,
    kubeconfig: Annotated[
        Path, typer.Option(help="Where to write the kubeconfig for kubectl and the operator.")
    ] = Path("kubeconfig"),
    pod_ready_delay: Annotated[float, typer.Option(help="Seconds before a Pod turns Ready.")] = 1.0,
    audit_log: Annotated[Path | None, typer.Option(help="Append every served request here (JSON lines).")] = None,
) -> None:
    """Serve an emulated Kubernetes API (RoutedModel CRD, Deployments, Pods...) until interrupted."""
    import asyncio

    from thermostat.apiserver.cli import serve_forever

    asyncio.run(serve_forever(port=port, kubeconfig=kubeconfig, pod_ready_delay_s=pod_ready_delay, audit_log=audit_log))


def main() -> None:
    app()
