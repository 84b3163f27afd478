"""HA operator (issue 17 item 2): two real operator processes peered through Kopf, distinct priorities.

Exactly one (the higher priority) actuates: every write to the Deployment and the routing ConfigMap in
the emulated API server's audit log carries that replica's identity in its User-Agent. SIGKILLed, its
peering record lingers until its lifetime runs out; the survivor then actuates within that lifetime
plus one control period, and the two never both actuate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import Cluster, EmulatedApi, LoadDriver, OperatorProcess, wait_until

from thermostat_stack.promserver import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

LIFETIME_S, PERIOD_S = 10, 1
SPEC: dict[str, Any] = {
    "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
    "slo": {"targetSeconds": 10, "windowSeconds": 15},
    "replicas": {"min": 1, "max": 3},
    "behavior": {"periodSeconds": PERIOD_S, "metricsMaxAgeSeconds": 10},
    "quality": {"minRoutingTemperature": 0.3},
}
PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "group": "kopf.dev",
        "scope": "Cluster",
        "names": {"plural": "clusterkopfpeerings", "singular": "clusterkopfpeering", "kind": "ClusterKopfPeering"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}  # fmt: skip


@pytest.fixture
def cluster(emulated_api: EmulatedApi) -> Cluster:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    from kubernetes import utils

    utils.create_from_dict(cluster.kube.api_client, PEERING_CRD)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "thermostat"}}
    cluster.kube.custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering,
                                                     _preload_content=False)  # fmt: skip
    return cluster


@pytest.fixture
def replicas(
    emulated_api: EmulatedApi, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[Callable[[str, int | None], OperatorProcess]]:
    peered = {"THERMOSTAT_PEERING": "thermostat", "THERMOSTAT_PEERING_LIFETIME_SECONDS": str(LIFETIME_S)}
    started: list[OperatorProcess] = []

    def start(name: str, priority: int | None) -> OperatorProcess:
        """A peered replica: a fixed priority, or (None) ranked by its start time as the chart runs it."""
        ranking = (
            {"THERMOSTAT_PRIORITY_BY_START": "true"} if priority is None else {"THERMOSTAT_PRIORITY": str(priority)}
        )
        started.append(OperatorProcess(emulated_api.kubeconfig, prometheus.url, tmp_path / f"operator-{name}.log",
                                       THERMOSTAT_IDENTITY=f"replica-{name}", **ranking, **peered))  # fmt: skip
        return started[-1]

    yield start
    for process in started:  # the killed one too: stop() of a dead process is a no-op
        process.stop()
        print(process.log_tail())  # shown by pytest when the test failed


def peers(cluster: Cluster) -> list[int]:
    """The priorities in the peering object's status (one entry per live replica)."""
    response = cluster.kube.custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "thermostat",
                                                             _preload_content=False)  # fmt: skip
    status = json.loads(response.data).get("status") or {}
    return sorted(int(entry["priority"]) for entry in status.values() if isinstance(entry, dict))


ACTUATED = {("apps", "deployments"), ("", "configmaps")}


def actuators(emulated_api: EmulatedApi, since: float = 0.0, kinds: set[tuple[str, str]] | None = None
              ) -> list[tuple[float, str]]:  # fmt: skip
    """(time, replica identity) of every write by an operator replica to a Deployment or ConfigMap
    (or to any of ``kinds``, (group, resource) pairs; a status write's resource is its object's)."""
    found = []
    path = emulated_api.audit.path
    for entry in (json.loads(line) for line in (path.read_text().splitlines() if path.exists() else [])):
        agent = entry.get("userAgent", "")
        if (
            entry["verb"] in ("create", "update", "patch")
            and (entry["group"] or "", entry["resource"]) in (kinds or ACTUATED)
            and "(replica-" in agent
            and entry["time"] >= since
            and entry.get("code", 0) < 300
        ):
            found.append((entry["time"], agent.split("(replica-")[1].rstrip(")")))
    return found


def test_one_replica_actuates_and_the_survivor_takes_over_within_lifetime_plus_a_period(
    emulated_api: EmulatedApi,
    cluster: Cluster,
    replicas: Callable[[str, int | None], OperatorProcess],
    load: LoadDriver,
) -> None:
    active = replicas("a", 100)
    wait_until(lambda: peers(cluster) == [100], timeout_s=60, what="replica a in the peering object")
    # The standby joins a running one (as a second pod does): a replica joining *above* an active one
    # would write until it is seen, since Kopf pauses only the lower priority (see the docs).
    replicas("b", 50)
    wait_until(lambda: peers(cluster) == [50, 100], timeout_s=60, what="replica b in the peering object")
    cluster.create_routedmodel(SPEC)
    load.set(rate=0.5, latency_s=4.0)
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=90, what="metrics")
    load.set(rate=6.0, latency_s=30.0)  # a burst: the active replica must act
    wait_until(lambda: float(cluster.temperature() or 1) < 1.0, timeout_s=60, what="an actuation")
    before = actuators(emulated_api)
    assert {who for _, who in before} == {"a"}, before
    active.process.kill()
    active.process.wait()
    killed_at = time.time()
    load.set(rate=12.0, latency_s=60.0)  # more load: the survivor must act, not just hold
    took_over = wait_until(lambda: actuators(emulated_api, since=killed_at), timeout_s=LIFETIME_S + 30,
                           what="an actuation by the survivor")  # fmt: skip
    after_s = took_over[0][0] - killed_at
    print(f"HA: active replica SIGKILLed; survivor actuated after {after_s:.1f} s "
          f"(lifetime {LIFETIME_S} s + period {PERIOD_S} s); writes before {len(before)} all by a")  # fmt: skip
    assert {who for _, who in took_over} == {"b"}
    assert after_s <= LIFETIME_S + PERIOD_S + 1  # + 1 s: Kopf's resume and the first handler call on 2 busy cores


WRITES = {*ACTUATED, ("thermostat.dev", "routedmodels")}  # the knobs, and the status (and annotations) of the object


def test_a_restarted_replica_ranked_by_start_time_rejoins_as_standby_and_never_writes(
    emulated_api: EmulatedApi,
    cluster: Cluster,
    replicas: Callable[[str, int | None], OperatorProcess],
    load: LoadDriver,
) -> None:
    """The chart's scheme (THERMOSTAT_PRIORITY_BY_START): the active replica killed and restarted comes
    back below the survivor, as any restarted or rolled-out pod does, so the survivor stays the only writer."""
    first = replicas("a", None)
    wait_until(lambda: len(peers(cluster)) == 1, timeout_s=60, what="replica a in the peering object")
    replicas("b", None)
    wait_until(lambda: len(peers(cluster)) == 2, timeout_s=60, what="replica b in the peering object")
    cluster.create_routedmodel(SPEC)
    load.set(rate=0.5, latency_s=4.0)
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=90, what="metrics")
    assert {who for _, who in actuators(emulated_api, kinds=WRITES)} == {"a"}
    first.process.kill()
    first.process.wait()
    killed_at = time.time()
    took_over = wait_until(lambda: actuators(emulated_api, since=killed_at, kinds=WRITES),
                           timeout_s=LIFETIME_S + 30, what="the survivor writing")  # fmt: skip
    survivors = set(peers(cluster))
    first.restart()
    rejoined = wait_until(lambda: set(peers(cluster)) - survivors, timeout_s=60, what="replica a back in the peering")
    rejoined_at = time.time()
    assert max(rejoined) < min(survivors), (rejoined, survivors)  # started later: ranked below
    load.set(rate=6.0, latency_s=30.0)  # a burst after the rejoin: whoever is active acts on it
    wait_until(lambda: actuators(emulated_api, since=rejoined_at), timeout_s=60, what="an actuation after the rejoin")
    writers = {who for _, who in actuators(emulated_api, since=rejoined_at, kinds=WRITES)}
    print(
        f"HA by start time: survivor b took over {took_over[0][0] - killed_at:.1f} s after the kill; "
        f"a rejoined ranked {max(rejoined)} below {min(survivors)}; writers since: {sorted(writers)}"
    )
    assert writers == {"b"}, writers
