"""What ``thermostat up`` decides before starting anything: the RoutedModel, the load, the options.

Everything here is checked up front, so a bad spec, a missing Prometheus or a trace in the wrong
format ends the command with one clear message before any process starts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from thermostat.api.manifests import check_routedmodel
from thermostat.api.spec import RoutedModelSpec, SloMetric
from thermostat_stack.capacity import Capacity
from thermostat_stack.nodeagent import DEFAULT_START_DELAY_S, MAX_LOCAL_REPLICAS
from thermostat_stack.scenarios import (
    OfferedLoad,
    RequestShape,
    burst_scenario,
    diurnal_scenario,
    scenario_load,
    slo_capacity,
)
from thermostat_stack.trace import default_rate_scale, read_trace, trace_from, trace_load

EXAMPLE = "local-stack.yaml"


class SetupError(ValueError):
    """A problem with what ``thermostat up`` was asked to do, worded for the person who asked."""


@dataclass(frozen=True)
class UpOptions:
    """The command line of ``thermostat up``."""

    spec_file: Path | None = None
    scenario: str = "burst"
    trace: Path | None = None
    rate_scale: float | None = None
    trace_offset_s: float = 0.0
    max_prompt_tokens: int = RequestShape().prompt_tokens
    max_tokens: int = RequestShape().max_tokens
    duration_s: float | None = None
    report_dir: Path | None = None
    live: bool = True
    kubeconfig: Path | None = None
    api_port: int = 0
    prometheus_port: int = 0
    start_delay_s: float = DEFAULT_START_DELAY_S
    capacity_requests: int = 8
    seed: int = 0


def example_path() -> Path:
    """The local example RoutedModel shipped with the repository (``examples/local-stack.yaml``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / EXAMPLE
        if candidate.is_file():
            return candidate
    packaged = resources.files("thermostat_stack").joinpath(EXAMPLE)
    return Path(str(packaged))


def load_manifest(path: Path | None) -> dict[str, Any]:
    """The RoutedModel to apply, checked as the API server would and against the local frame."""
    path = path or example_path()
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as error:
        raise SetupError(f"cannot read the RoutedModel in {path}: {error}") from None
    if len(documents) != 1:
        raise SetupError(f"{path}: expected exactly one RoutedModel, found {len(documents)} documents")
    manifest: dict[str, Any] = copy.deepcopy(documents[0])
    problems = check_routedmodel(manifest)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise SetupError(f"{path} is not a valid RoutedModel (check it with `thermostat validate`):\n{listed}")
    spec = parse_spec(manifest)
    if spec.model is None:
        raise SetupError(f"{path}: the local stack runs pods itself; use spec.model, not spec.targetRef")
    if spec.replicas.max > MAX_LOCAL_REPLICAS:
        raise SetupError(
            f"{path}: spec.replicas.max is {spec.replicas.max}, but the local stack runs at most "
            f"{MAX_LOCAL_REPLICAS} replicas (two cores, one torch thread each): "
            f"set replicas.max <= {MAX_LOCAL_REPLICAS}"
        )
    manifest.setdefault("metadata", {}).setdefault("namespace", "default")
    return manifest


def parse_spec(manifest: dict[str, Any]) -> RoutedModelSpec:
    return RoutedModelSpec.model_validate(manifest["spec"])


def check_load_options(options: UpOptions) -> None:
    """Refuse contradictory or out-of-range load options before anything starts."""
    if options.trace is None and options.scenario not in ("burst", "diurnal"):
        raise SetupError(f"--scenario must be burst or diurnal, got {options.scenario!r}")
    if options.trace is None and (options.rate_scale is not None or options.trace_offset_s):
        raise SetupError("--rate-scale and --trace-offset apply to --trace replay only")
    if options.duration_s is not None and options.duration_s <= 0:
        raise SetupError("--duration must be positive (seconds)")
    if options.max_prompt_tokens < 1 or options.max_tokens < 1:
        raise SetupError("--max-prompt-tokens and --max-tokens must be at least 1")
    if options.trace is not None:
        # Raises TraceError with the line at fault, or an offset past the trace's end.
        trace_from(read_trace(options.trace), options.trace_offset_s)


def build_load(options: UpOptions, spec: RoutedModelSpec, capacity: Capacity) -> OfferedLoad:
    """The offered load: the trace replayed, or a built-in scenario sized from the capacity."""
    shape = RequestShape(options.max_prompt_tokens, options.max_tokens)
    period = float(spec.behavior.period_seconds)
    if options.trace is not None:
        requests = trace_from(read_trace(options.trace), options.trace_offset_s)
        scale = options.rate_scale or default_rate_scale(requests, capacity.exact_rps)
        return trace_load(
            requests,
            rate_scale=scale,
            max_prompt_tokens=shape.prompt_tokens,
            max_tokens=shape.max_tokens,
            duration_s=options.duration_s,
            name=options.trace.name + (f" from {options.trace_offset_s:g}s" if options.trace_offset_s else ""),
        )
    if options.scenario == "diurnal":
        scenario = diurnal_scenario(
            capacity.exact_rps, capacity.tmin_rps, period_s=period, duration_s=options.duration_s, shape=shape
        )
    else:
        exact, tmin = capacity.exact_rps, capacity.tmin_rps
        slo = spec.slo
        if slo.metric == SloMetric.REQUEST_LATENCY:
            # Sized from what one replica carries within the SLO (the law's notion of capacity), not its raw
            # throughput: on a loaded machine a request alone takes most of the target.
            target = slo.target_seconds * (1.0 - slo.margin_fraction)
            exact = slo_capacity(exact, target_s=target, quantile=slo.quantile)
            tmin = slo_capacity(tmin, target_s=target, quantile=slo.quantile)
        try:
            scenario = burst_scenario(
                exact,
                tmin,
                period_s=period,
                window_s=spec.slo.window_seconds,
                settle_s=spec.behavior.scale_down.stabilization_window_seconds,
                duration_s=options.duration_s,
                shape=shape,
            )
        except ValueError as error:
            raise SetupError(str(error)) from None
    return scenario_load(scenario, seed=options.seed)
