"""``thermostat up``: the whole loop on this machine, from the first process to the report.

Order: check the request (spec, load options, Prometheus binary, ports); measure one replica's
capacity at T = 1 and T_min; start Prometheus, the emulated API server (with the node agent as its
Pod runner) and the operator; apply the RoutedModel; wait for the first replica; drive the load with
the live view; then write the report and end everything, whatever ended the run (``--duration``,
the end of the load, Ctrl-C or an error). Temporary files go with the run; the report stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from thermostat.render.workload import runtime_command
from thermostat_apiserver.server import ApiServer
from thermostat_stack.calibration import calibrated_profile
from thermostat_stack.capacity import Capacity, measure_capacity
from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.kubeapi import KubeApi
from thermostat_stack.loaddriver import LoadDriver
from thermostat_stack.nodeagent import NodeAgent, Target
from thermostat_stack.ports import claim_port
from thermostat_stack.processes import ChildProcess, ProcessTable
from thermostat_stack.promserver import PrometheusServer, find_binary
from thermostat_stack.recorder import Recorder
from thermostat_stack.report import write_report
from thermostat_stack.runphase import collect_run, drive
from thermostat_stack.scenarios import OfferedLoad, RequestShape
from thermostat_stack.scrape import KubernetesDiscovery, discovery_token
from thermostat_stack.setup import SetupError, UpOptions, build_load, check_load_options, load_manifest, parse_spec

SCRAPE_INTERVAL_S = 1.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass
class Stack:
    """What one ``thermostat up`` started, so that it can all be ended."""

    options: UpOptions
    console: Console
    workdir: Path
    processes: ProcessTable
    pool: EndpointPool = field(default_factory=EndpointPool)
    prometheus: PrometheusServer | None = None
    operator: ChildProcess | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ports: set[int] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)  # the runtime pods' host:port (each pod its own 127.0.0.N)
    other_pids: list[int] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.options.kubeconfig or self.workdir / "kubeconfig"

    def set_targets(self, targets: list[Target]) -> None:
        """Remember the runtime addresses (Prometheus finds the pods itself, through the API)."""
        self.addresses.update(t.address for t in targets)


def default_report_dir() -> Path:
    return Path("reports") / datetime.now(UTC).strftime("up-%Y%m%dT%H%M%SZ")


def _preflight(options: UpOptions) -> tuple[dict[str, Any], int, int]:
    """Every check that needs no process: spec, load options, Prometheus binary, ports."""
    check_load_options(options)
    manifest = load_manifest(options.spec_file)
    try:
        find_binary()
    except FileNotFoundError as error:
        raise SetupError(f"{error}. The README's first command installs it (scripts/install.sh).") from None
    api_port = claim_port(options.api_port, "the API server (--api-port)")
    prometheus_port = claim_port(options.prometheus_port, "Prometheus (--prometheus-port)")
    return manifest, api_port, prometheus_port


async def run_up(options: UpOptions, console: Console) -> dict[str, Any] | None:
    """Run the stack; returns the report's summary (None when the run ended before the load)."""
    manifest, api_port, prometheus_port = _preflight(options)
    workdir = Path(tempfile.mkdtemp(prefix="thermostat-up-"))
    stack = Stack(options, console, workdir, ProcessTable(workdir / "logs"), ports={api_port, prometheus_port})
    report_dir = options.report_dir or default_report_dir()
    _install_signal_handlers(stack)
    try:
        return await _run(stack, manifest, api_port, prometheus_port, report_dir)
    finally:
        await _teardown(stack, report_dir)


async def _run(
    stack: Stack, manifest: dict[str, Any], api_port: int, prometheus_port: int, report_dir: Path
) -> dict[str, Any] | None:
    console, options = stack.console, stack.options
    spec = parse_spec(manifest)
    capacity = await _measure_capacity(stack, spec)
    if capacity is None:
        return None
    load = build_load(options, spec, capacity)
    _print_plan(console, capacity, load)
    agent = NodeAgent(
        stack.processes,
        stack.pool,
        stack.kubeconfig,
        stack.set_targets,
        start_delay_s=options.start_delay_s,
        scrape_interval_s=SCRAPE_INTERVAL_S,
    )
    async with ApiServer(port=api_port, pod_runner=agent) as api:
        api.write_kubeconfig(stack.kubeconfig)
        stack.prometheus = await _start_prometheus(stack, prometheus_port, api)
        stack.operator = _start_operator(stack, capacity)
        console.print(f"API server {api.url}, Prometheus {stack.prometheus.url}, operator pid {stack.operator.pid}")
        console.print(f"[bold]kubectl --kubeconfig {stack.kubeconfig} get rm[/]  (while it runs)")
        async with KubeApi(api.url) as kube:
            driver = LoadDriver(stack.pool, model=spec.model.served_model_name if spec.model else None)
            name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
            recorder = Recorder(kube, stack.prometheus.url, namespace, name, spec, driver)
            await _apply(kube, manifest)
            if not await _abortable(stack, _wait_first_replica(stack, spec)):
                return None
            await drive(stack, load, driver, recorder, agent)
            run = await collect_run(stack, kube, recorder, load=load, capacity=capacity, agent=agent)
        await _stop_operator(stack)
    summary = write_report(run, report_dir)
    console.print(f"[bold]Report[/] in {report_dir}/ (summary.md, summary.json, overview.png and one PNG per plot)")
    return summary


async def _measure_capacity(stack: Stack, spec: Any) -> Capacity | None:
    """One replica, started with the replicas' own command line, measured at T = 1 and T_min."""
    options = stack.options
    shape = RequestShape(options.max_prompt_tokens, options.max_tokens)
    stack.console.print(
        f"[bold]Measuring one replica's capacity[/] at T=1 and T_min, alternating ({shape.prompt_tokens} prompt "
        f"tokens, {shape.max_tokens} generated, {options.capacity_requests} requests each)..."
    )
    serve_args = runtime_command(spec.model, shadow_fraction=spec.quality.shadow_fraction)[1:]
    work = measure_capacity(
        stack.processes, shape=shape, requests_each=options.capacity_requests, serve_args=serve_args
    )
    capacity: Capacity | None = await _abortable(stack, work)
    return capacity


async def _start_prometheus(stack: Stack, port: int, api: ApiServer) -> PrometheusServer:
    """Prometheus discovering the runtime pods through the API, as its own ServiceAccount (list, watch pods)."""
    discovery = KubernetesDiscovery(api.url, discovery_token(api))
    prometheus = PrometheusServer(discovery=discovery, port=port, scrape_interval_s=SCRAPE_INTERVAL_S)
    stack.prometheus = prometheus  # stopped at teardown even if it fails to become ready
    await asyncio.to_thread(prometheus.start)
    if prometheus.process is not None:
        stack.other_pids.append(prometheus.process.pid)
    return prometheus


def _print_plan(console: Console, capacity: Capacity, load: OfferedLoad) -> None:
    low, high = capacity.spread
    console.print(
        f"capacity of one replica: {capacity.exact_rps:.3f} req/s at T=1, {capacity.tmin_rps:.3f} req/s at "
        f"T_min={capacity.t_min:g} (x{capacity.gain:.2f}, median of {len(capacity.ratios)} paired rounds, "
        f"x{low:.2f} to x{high:.2f})"
    )
    peak = max((a.time_s for a in load.arrivals), default=0.0)
    console.print(f"offered load: {load.description}")
    console.print(
        f"  mean {load.mean_rps:.3f} req/s = {load.mean_rps / capacity.exact_rps:.0%} of one replica at T=1"
        f" ({len(load.arrivals)} requests, last at {peak:.0f}s)"
    )


def _start_operator(stack: Stack, capacity: Capacity) -> ChildProcess:
    """The operator, planning with the runtime's served profile calibrated to this machine (:mod:`calibration`)."""
    assert stack.prometheus is not None
    profile_env: dict[str, str] = {}
    if capacity.profile is not None:
        path = stack.workdir / "routing-profile.json"
        path.write_text(json.dumps(calibrated_profile(capacity.profile, capacity)))
        profile_env["THERMOSTAT_PROFILE"] = str(path)
    env = {
        **profile_env,
        **_base_env(),
        "THERMOSTAT_KUBECONFIG": str(stack.kubeconfig),
        "THERMOSTAT_PROMETHEUS_URL": stack.prometheus.url,
        # Loopback only and nothing fixed: the operator's own /metrics and liveness are not needed here.
        "THERMOSTAT_METRICS_PORT": "0",
        "THERMOSTAT_LIVENESS_ENDPOINT": "",
        "THERMOSTAT_LOG_FORMAT": "text",
    }
    argv = [sys.executable, "-m", "thermostat", "operator", "--kubeconfig", str(stack.kubeconfig)]
    return stack.processes.start("operator", argv, env=env)


def _base_env() -> dict[str, str]:
    import os

    operator_dir = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (operator_dir, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


async def _apply(kube: KubeApi, manifest: dict[str, Any]) -> None:
    namespace = manifest["metadata"]["namespace"]
    with contextlib.suppress(Exception):  # it may exist already (default)
        await kube.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
    path = f"/apis/thermostat.dev/v1alpha1/namespaces/{namespace}/routedmodels"
    # Recorded as `kubectl apply` records it, so a later `kubectl apply -f` merges cleanly.
    applied = {**manifest, "metadata": {**manifest["metadata"]}}
    annotations = dict(applied["metadata"].get("annotations") or {})
    annotations[LAST_APPLIED] = json.dumps(manifest, separators=(",", ":"))
    applied["metadata"]["annotations"] = annotations
    await kube.request("POST", path, body=applied, params={"fieldValidation": "Strict"})


async def _wait_first_replica(stack: Stack, spec: Any) -> bool:
    """Until one replica is ready; an operator that exits meanwhile ends the run with its log."""
    limit_s = stack.options.start_delay_s + spec.model.startup_seconds
    deadline = time.monotonic() + limit_s
    stack.console.print("waiting for the first replica (start delay, model load, first routing temperature read)...")
    while not stack.pool.ready():
        if stack.operator is not None and not stack.operator.alive():
            raise RuntimeError(f"the operator exited:\n{stack.operator.log_tail()}")
        if time.monotonic() > deadline:
            tail = stack.operator.log_tail(1500) if stack.operator else ""
            raise TimeoutError(
                f"no replica ready after {limit_s:.0f}s (logs in the report directory); operator log:\n{tail}"
            )
        await asyncio.sleep(0.5)
    stack.console.print(f"first replica ready: {stack.pool.ready()[0].pod}")
    return True


async def _abortable(stack: Stack, work: Any) -> Any:
    """``work``'s result, or None when Ctrl-C came first."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stack.stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


async def _stop_operator(stack: Stack) -> None:
    if stack.operator is not None:
        await stack.operator.stop_async(grace_s=10)


def _write_lifecycle(stack: Stack, report_dir: Path) -> None:
    """Record every process and port the run used, so that a test can check none is left."""
    pids = [child.pid for child in stack.processes.processes] + stack.other_pids
    ports = sorted(stack.ports)
    record = {"pids": pids, "ports": ports, "addresses": sorted(stack.addresses), "workdir": str(stack.workdir),
              "kubeconfig": str(stack.kubeconfig)}  # fmt: skip
    with contextlib.suppress(OSError):
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "lifecycle.json").write_text(json.dumps(record, indent=1) + "\n")


def _install_signal_handlers(stack: Stack) -> None:
    """First Ctrl-C (or SIGTERM): end the load and write the report; the second: stop at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def interrupt() -> None:
        if stack.stop.is_set() and main is not None:
            main.cancel()
            return
        stack.console.print("\n[bold yellow]stopping[/]: ending the load, writing the report (Ctrl-C again: at once)")
        stack.stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, interrupt)


async def _teardown(stack: Stack, report_dir: Path) -> None:
    """End every process, keep the logs with the report, remove the temporary files."""
    await _stop_operator(stack)
    await asyncio.to_thread(stack.processes.stop_all, 10.0)
    if stack.prometheus is not None:
        await asyncio.to_thread(stack.prometheus.stop)
    _write_lifecycle(stack, report_dir)
    profile = stack.workdir / "routing-profile.json"
    if profile.is_file():
        with contextlib.suppress(OSError):
            shutil.copy(profile, report_dir / "operator-profile.json")
    logs = stack.workdir / "logs"
    if logs.is_dir():
        with contextlib.suppress(OSError):
            shutil.copytree(logs, report_dir / "logs", dirs_exist_ok=True)
    if stack.options.kubeconfig is not None:
        stack.options.kubeconfig.unlink(missing_ok=True)
    shutil.rmtree(stack.workdir, ignore_errors=True)
    with contextlib.suppress(RuntimeError):
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


__all__ = ["SetupError", "UpOptions", "run_up"]
