"""A staged rollout judged on the REAL runtime's shadow quality, and rolled back (issue 16, item 7).

The real operator process runs as the chart's ServiceAccount against the emulated API server, whose
Pod runner is the local stack's node agent: the operator's Deployment becomes two real
``thermostat-runtime serve`` processes (SmolLM2-135M on CPU), each told its track by the downward API
labels file the agent writes and rewrites when the operator relabels the pod. A real Prometheus
discovers the pods with the chart's relabelling (the pod label ``thermostat.dev/track`` copied into
``track``) and the stack's load driver sends short completions to both.

The harmful candidate: the operator plans with a doctored copy of the committed CPU profile whose
quality figures claim that every temperature down to T_min is nearly lossless, so the law's operating
point falls to T_min and the fall is staged on one canary pod. That pod's real shadow requests
measure what T_min really costs (tens of percent, against a 1 % budget): the analysis fails on
quality and the operator rolls back. Throughout, the stable pod serves T = 1 (each reply's
``usage.routing_temperature``, and its ``thermostat_routing_temperature`` in Prometheus); the canary
pod served the candidate during the analysis and serves 1 again after the rollback. The figures are
printed (``pytest -s``: the ``ROLLOUT real-runtime:`` line) and recorded in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
from integration_support import NAMESPACE, Cluster, EmulatedApi, OperatorProcess, wait_until
from rbac_support import Audit, discovering_prometheus, operator_within_table

from thermostat_apiserver.server import ApiServer
from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.loaddriver import LoadDriver, RequestRecord
from thermostat_stack.nodeagent import NodeAgent
from thermostat_stack.processes import ProcessTable
from thermostat_stack.promserver import PrometheusServer
from thermostat_stack.scenarios import Arrival, OfferedLoad

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.model, pytest.mark.timeout(300)]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
CPU_PROFILE = ROOT / "runtime" / "thermostat_runtime" / "profiles" / "smollm2-135m-cpu.json"
SCRAPE_S = 0.5
# Short requests, so that two runtime replicas (one torch thread each, every request shadowed at
# exact) keep up on two shared cores: ~1 s of work each, offered at 1 a second in all.
RATE, PROMPT_TOKENS, MAX_TOKENS, LOAD_S = 1.0, 8, 12, 240.0
BUDGET_PERCENT = 1.0


def spec() -> dict[str, Any]:
    return {
        "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}, "maxRequestSeconds": 30,
                  "startupSeconds": 120},
        # Far above a short request's latency here: the law never drops the temperature to hold the SLO
        # (a drop would reach the stable pod too).
        "slo": {"targetSeconds": 20, "windowSeconds": 15},
        "quality": {"maxQualityLossPercent": BUDGET_PERCENT, "shadowFraction": 1.0},
        "replicas": {"min": 2, "max": 2},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10},
        "rollout": {"steps": [50],
                    "analysis": {"intervalSeconds": 30, "minRequests": 10, "minShadowTokens": 60}},
    }  # fmt: skip


def doctored_profile(path: Path) -> Path:
    """The committed CPU profile with its quality figures replaced by a claim of near losslessness
    (0.05 % at T_min): its timings are kept, so the law's operating point falls to T_min."""
    profile = json.loads(CPU_PROFILE.read_text())
    for point in profile["points"]:
        kl = 0.0005 * (1.0 - point["routing_temperature"])
        loss = 100.0 * math.expm1(kl)
        point["kl_nats"], point["kl_nats_ci95"] = kl, [kl * 0.5, kl * 1.5]
        point["quality_loss_percent"], point["quality_loss_ci95"] = loss, [loss * 0.5, loss * 1.5]
        if "chat" in point:
            point["chat"]["kl_nats"], point["chat"]["quality_loss_percent"] = kl, loss
    profile["notes"] = "DOCTORED for tests/integration/test_rollout_real_runtime.py: quality figures claim ~0 loss"
    path.write_text(json.dumps(profile, indent=1))
    return path


class NodeStack:
    """The emulated API server with the node agent as its Pod runner, and the load driver, on an event
    loop of their own (a thread), as ``thermostat up`` runs them in one process."""

    def __init__(self, workdir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="node-stack", daemon=True)
        self.thread.start()
        self.processes = ProcessTable(workdir / "logs")
        self.pool = EndpointPool()
        self.kubeconfig, self.audit_path = workdir / "kubeconfig", workdir / "audit.jsonl"
        self.agent = NodeAgent(self.processes, self.pool, self.kubeconfig, lambda _: None, start_delay_s=0.5,
                               scrape_interval_s=SCRAPE_S, pods_dir=workdir / "pods")  # fmt: skip
        self.api: ApiServer | None = None
        self._audit = self.audit_path.open("a", encoding="utf-8")
        self.driver: LoadDriver | None = None
        self.load: Future[None] | None = None

    def call(self, work: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout_s)

    def start(self) -> EmulatedApi:
        def audit(entry: dict[str, Any]) -> None:  # one JSON line per answered request, read live
            self._audit.write(json.dumps(entry) + "\n")
            self._audit.flush()

        async def enter() -> str:
            self.api = ApiServer(port=0, pod_runner=self.agent)
            self.api.kmock.audit_sink = audit
            await self.api.__aenter__()
            self.api.write_kubeconfig(self.kubeconfig)
            return self.api.url

        url = self.call(enter())
        return EmulatedApi(self.kubeconfig, url, None, self.audit_path, Audit(self.audit_path))  # type: ignore[arg-type]

    def start_load(self) -> LoadDriver:
        arrivals = tuple(Arrival(i / RATE, PROMPT_TOKENS, MAX_TOKENS) for i in range(int(RATE * LOAD_S)))
        load = OfferedLoad("steady", arrivals, LOAD_S, None, f"{RATE} req/s of {MAX_TOKENS} tokens")

        async def create() -> LoadDriver:
            return LoadDriver(self.pool)

        self.driver = self.call(create())
        self.load = asyncio.run_coroutine_threadsafe(self.driver.run(load), self.loop)
        return self.driver

    def records(self) -> list[RequestRecord]:
        assert self.driver is not None
        return list(self.driver.stats.records)  # appended on the loop's thread: a copy to read

    def stop(self) -> None:
        if self.driver is not None and self.load is not None:
            self.loop.call_soon_threadsafe(self.driver.stop)
            self.load.result(60)
        try:
            if self.api is not None:
                self.call(self.api.__aexit__(None, None, None), timeout_s=90)  # the agent drains every Pod
        finally:
            self.processes.stop_all(grace_s=5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self._audit.close()


@pytest.fixture
def node_stack(tmp_path: Path) -> Iterator[NodeStack]:
    from thermostat_runtime.gguf_loader import ModelNotFoundError, resolve_model_path

    try:
        resolve_model_path(None)
    except ModelNotFoundError as error:
        pytest.skip(str(error))
    stack = NodeStack(tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def emulated_api(node_stack: NodeStack) -> EmulatedApi:
    """This module's API server: in-process, its Pods run by the node agent as real runtime processes."""
    return node_stack.start()


@pytest.fixture
def prometheus(emulated_api: EmulatedApi) -> Iterator[PrometheusServer]:
    with discovering_prometheus(emulated_api, scrape_interval_s=SCRAPE_S) as (server, _):
        yield server


@pytest.fixture
def operator(
    emulated_api: EmulatedApi, operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    profile = doctored_profile(tmp_path / "doctored-profile.json")
    log = tmp_path / "operator.log"
    with operator_within_table(emulated_api, operator_kubeconfig, prometheus.url, log,
                               THERMOSTAT_PROFILE=str(profile)) as process:  # fmt: skip
        yield process


def _served(records: list[RequestRecord], pod: str, since_s: float = 0.0, until_s: float = float("inf")) -> list[float]:
    """The temperatures ``pod`` served the ok requests sent in [since_s, until_s) at."""
    return [r.routing_temperature for r in records if r.outcome == "ok" and r.pod == pod
            and since_s <= r.sent_s < until_s and r.routing_temperature is not None]  # fmt: skip


def test_a_candidate_the_real_runtime_measures_as_harmful_is_rolled_back(
    node_stack: NodeStack, emulated_api: EmulatedApi, operator: OperatorProcess, prometheus: PrometheusServer
) -> None:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    cluster.create_routedmodel(spec())
    stable_key: set[str | None] = set()

    def rollout() -> dict[str, Any]:
        stable_key.add(cluster.temperature())
        return cluster.status().get("rollout") or {}

    wait_until(lambda: len(node_stack.pool.ready()) == 2, timeout_s=120, what="two runtime pods ready",
               process=operator.process)  # fmt: skip
    driver = node_stack.start_load()
    wait_until(lambda: rollout().get("phase") == "Progressing", timeout_s=90, what="a rollout started",
               process=operator.process)  # fmt: skip
    started_s, started = driver.elapsed_s(), time.monotonic()
    state = rollout()
    candidate = float(state["candidateTemperature"])
    (canary_name,) = state["canaryPods"]
    canary = f"{NAMESPACE}/{canary_name}"
    (stable,) = [e.pod for e in node_stack.pool.ready() if e.pod != canary]
    try:
        wait_until(lambda: rollout().get("phase") in ("RolledBack", "Promoted"), timeout_s=120,
                   what="the rollout's verdict", process=operator.process)  # fmt: skip
    finally:
        print(cluster.status().get("rollout"))
    verdict_s, to_verdict_s = driver.elapsed_s(), time.monotonic() - started
    verdict = rollout()
    assert verdict["phase"] == "RolledBack", verdict["message"]
    # After the rollback the canary pod serves the stable key again (its next requests say so).
    wait_until(lambda: _served(node_stack.records(), canary, since_s=verdict_s)[-1:] == [1.0], timeout_s=30,
               what="the former canary pod serving T = 1 again")  # fmt: skip
    records = node_stack.records()
    state = cluster.status()["rollout"]
    analysis = state["lastAnalysis"]
    measured = analysis["canary"]
    before_verdict = _served(records, canary, until_s=verdict_s)  # the load began once both pods were ready
    on_candidate = [t for t in _served(records, canary, started_s, verdict_s) if abs(t - candidate) < 1e-6]
    low, high = measured["qualityLossInterval"]
    print(f"\nROLLOUT real-runtime: candidate T={candidate:g} on 1 canary pod of 2; canary requests before the "
          f"verdict {len(before_verdict)} ({len(on_candidate)} served at the candidate), measured loss "
          f"{measured['qualityLossPercent']:.1f}% (95% [{low:.1f}, {high:.1f}]) over {measured['shadowTokens']:.0f} "
          f"shadow tokens against a {BUDGET_PERCENT:g}% budget; verdict {state['phase']} "
          f"{analysis['intervalSeconds']:.1f}s into the analysis interval, {to_verdict_s:.1f}s after the rollout "
          f"was seen Progressing; stable pod served T={sorted(set(_served(records, stable)))} in "
          f"{len(_served(records, stable))} requests; load {driver.stats.sent} sent, {driver.stats.ok} ok, "
          f"{driver.stats.failed} failed")  # fmt: skip

    assert candidate < 0.5  # the doctored profile's operating point: far below exact
    actions = [h["action"] for h in state["history"]]
    # Started, then (an inconclusive interval or two on a busy machine at most) the rollback.
    assert (actions[0], actions[-1]) == ("Started", "RolledBack")
    assert not {"Advanced", "Promoted"} & set(actions)
    assert analysis["result"] == "Failed"
    assert "quality loss" in analysis["message"]
    assert measured["qualityLossInterval"][0] > BUDGET_PERCENT  # the real runtime's loss, over the budget
    assert measured["shadowTokens"] >= spec()["rollout"]["analysis"]["minShadowTokens"]
    # The stable pod never left T = 1: every reply it gave, and its gauge as Prometheus stored it.
    assert _served(records, stable)
    assert set(_served(records, stable)) == {1.0}
    lowest = f'min(min_over_time(thermostat_routing_temperature{{pod="{stable.split("/")[1]}"}}[10m]))'
    assert [float(s["value"][1]) for s in prometheus.query(lowest)] == [1.0]
    assert stable_key == {"1.0"}  # the stable key of the routing ConfigMap, at every read
    assert on_candidate  # the canary served the candidate during the analysis
    condition = cluster.condition("Rollout")
    assert (condition["status"], condition["reason"]) == ("False", "RolledBack")
    assert cluster.events("RolloutRolledBack")
    configmap = cluster.kube.read("ConfigMap", NAMESPACE, "chat-routing")
    assert configmap is not None
    assert "canary.routing_temperature" not in configmap["data"]
    pod = cluster.kube.core.read_namespaced_pod(canary_name, NAMESPACE)
    assert pod.metadata.labels.get("thermostat.dev/track") == "stable"
    assert driver.stats.failed == 0, dict(driver.stats.failure_reasons)
