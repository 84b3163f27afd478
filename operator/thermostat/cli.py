"""Command line of the operator side: ``thermostat crd | validate | operator | simulate`` and the tools'.

Each command imports what it needs when it runs, so ``thermostat validate`` works with the base
install and never pulls in Kopf or the Kubernetes client. The test and demo tools (``thermostat
apiserver``, ``thermostat up``) live in their own packages, which the core never imports: they declare
their commands in the ``thermostat.commands`` entry-point group, and :class:`PluginGroup` loads one
only when it is asked for. A tool package ``thermostat_<extra>`` needs the extra of that name; when
it is missing, the command says which one to install.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

PLUGIN_GROUP = "thermostat.commands"


def plugin_commands() -> dict[str, EntryPoint]:
    """The tools' commands declared through entry points, by command name."""
    return {entry.name: entry for entry in entry_points(group=PLUGIN_GROUP)}


def extra_of(entry: EntryPoint) -> str:
    """The extra a tool's command needs: ``thermostat_stack.command`` needs ``stack``."""
    package = entry.module.split(".", 1)[0]
    return package.removeprefix("thermostat_")


def single_command(name: str, function: Callable[..., Any], **settings: Any) -> Any:
    """The click command typer builds from one function (typer's own click type, hence ``Any``)."""
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name=name, **settings)(function)
    return typer.main.get_command(single)


def missing_extra_command(name: str, extra: str, error: ImportError) -> Any:
    """A stand-in for a tool command whose extra is not installed: it says what to install."""
    install = f"pip install 'thermostat[{extra}]'"

    def explain() -> None:
        typer.echo(f"thermostat {name} needs the '{extra}' extra ({error}): {install}", err=True)
        raise typer.Exit(code=2)

    return single_command(
        name,
        explain,
        help=f"(needs the '{extra}' extra: {install})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def load_plugin(name: str, entry: EntryPoint) -> Any:
    """The command of one tool, built from the plain typer-annotated function it declares."""
    try:
        function: Callable[..., Any] = entry.load()
    except ImportError as error:
        return missing_extra_command(name, extra_of(entry), error)
    return single_command(name, function)


class PluginGroup(TyperGroup):
    """The ``thermostat`` group: its own commands plus the tools', each loaded on first use.

    Contexts and commands are typed ``Any``: recent typer vendors click, so their classes are private.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        own = super().list_commands(ctx)
        return [*own, *(name for name in plugin_commands() if name not in own)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        own = super().get_command(ctx, cmd_name)
        if own is not None:
            return own
        entry = plugin_commands().get(cmd_name)
        return None if entry is None else load_plugin(cmd_name, entry)


app = typer.Typer(
    cls=PluginGroup,
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
def rbac() -> None:
    """Print the operator's RBAC rules, generated from its declared API use (the chart's files/operator-rules.yaml)."""
    from thermostat.kube.inventory import rules_yaml

    typer.echo(rules_yaml(), nl=False)


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
def explain(
    name: Annotated[str, typer.Argument(help="The RoutedModel's name.")],
    *,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Its namespace.")] = "default",
    log: Annotated[
        Path | None,
        typer.Option(
            help="The operator's JSON log (THERMOSTAT_LOG_FORMAT=json, the default): every decision, not only the "
            "last 20 in status."
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many decisions (or quiet periods) to print.")] = 10,
    price_per_kwh: Annotated[
        float | None, typer.Option(min=0.0, help="Energy price per kWh: adds the money saved to the ledger.")
    ] = None,
    currency: Annotated[str, typer.Option(help="Currency label of --price-per-kwh, e.g. EUR.")] = "",
) -> None:
    """Explain a RoutedModel's recent decisions in prose, and what routing saved against exact quality."""
    from thermostat.explain_command import run_explain

    code = run_explain(
        name, namespace=namespace, log=log, kubeconfig=kubeconfig, limit=limit,
        price_per_kwh=price_per_kwh, currency=currency,
    )  # fmt: skip
    if code:
        raise typer.Exit(code=code)


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
    part: Annotated[
        str, typer.Option(help="whole, first-half or second-half of the trace (tune on one half, report the other).")
    ] = "whole",
    perturb: Annotated[bool, typer.Option(help="Move the ground truth away from the law's assumptions.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of rate scaling, the synthetic trace and calibration.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write one plot per controller into this directory.")] = None,
) -> None:
    """What-if: replay a trace under a RoutedModel spec with our law and the baselines; print a table."""
    try:
        from thermostat.sim.cli import run_simulate
    except ImportError as error:
        typer.echo(f"thermostat simulate needs the 'sim' extra ({error}): pip install 'thermostat[sim]'", err=True)
        raise typer.Exit(code=2) from None

    code = run_simulate(
        trace=trace,
        spec_path=spec,
        controller=controller,
        profile_path=profile,
        rate_scale=rate_scale,
        part=part,
        perturb=perturb,
        seed=seed,
        json_out=json_out,
        plots=plots,
    )
    if code:
        raise typer.Exit(code=code)


def main() -> None:
    app()
