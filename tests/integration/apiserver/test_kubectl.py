"""The machine's kubectl against the emulated API server, as a user would use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from thermostat_apiserver import ApiServer

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: inference}\n"
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27", ports: [{containerPort: 80, name: http}]}
"""


def _example() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "examples" / "chat-p95-watts.yaml").read_text()))


def _with(obj: dict[str, Any], path: str, value: Any) -> str:
    obj = json.loads(json.dumps(obj))
    node = obj
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return yaml.safe_dump(obj)


async def test_apply_get_and_edit_a_routedmodel(kubectl: Any) -> None:
    await kubectl("apply", "-f", "-", stdin=NAMESPACE)
    applied = await kubectl("apply", "-f", str(REPO / "examples" / "chat-p95-watts.yaml"))
    assert "routedmodel.thermostat.dev/chat created" in applied.stdout
    status = {
        "status": {
            "current": {"replicas": 2, "routingTemperature": 0.6},
            "display": {"latency": "0.8s/2s", "power": "~900W/2800W"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Ready",
                    "message": "ok",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    await kubectl(
        "-n", "inference", "patch", "rm", "chat", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    table = (await kubectl("-n", "inference", "get", "rm")).stdout.splitlines()
    assert table[0].split() == ["NAME", "REPLICAS", "TEMPERATURE", "LATENCY", "POWER", "ROLLOUT", "READY", "AGE"]
    assert table[1].split()[:6] == ["chat", "2", "0.6", "0.8s/2s", "~900W/2800W", "True"]
    wide = (await kubectl("-n", "inference", "get", "rm", "-o", "wide")).stdout
    assert "MODE" in wide.splitlines()[0]
    assert "Enforce" in wide
    await kubectl("-n", "inference", "patch", "rm", "chat", "--type=merge", "-p", '{"spec":{"replicas":{"max":6}}}')
    obj = json.loads((await kubectl("-n", "inference", "get", "rm", "chat", "-o", "json")).stdout)
    assert (obj["spec"]["replicas"]["max"], obj["metadata"]["generation"]) == (6, 2)
    assert obj["status"]["current"]["replicas"] == 2  # spec writes never touch status
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    reapplied = await kubectl("apply", "-f", str(REPO / "examples" / "chat-p95-watts.yaml"))
    assert "configured" in reapplied.stdout
    as_yaml = yaml.safe_load((await kubectl("-n", "inference", "get", "rm", "chat", "-o", "yaml")).stdout)
    assert as_yaml["spec"]["replicas"]["max"] == 4


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("spec.slo.bogus", 1, "spec.slo"),  # unknown field (fieldValidation=Strict)
        ("spec.replicas", {"min": 5, "max": 2}, "spec.replicas"),  # CEL: min <= max
        ("spec.slo.quantile", 1.5, "spec.slo.quantile"),  # OpenAPI: quantile in (0, 1)
    ],
)
async def test_an_invalid_routedmodel_is_refused_naming_the_field(
    kubectl: Any, path: str, value: Any, field: str
) -> None:
    await kubectl("apply", "-f", "-", stdin=NAMESPACE)
    result = await kubectl("apply", "-f", "-", stdin=_with(_example(), path, value), check=False)
    assert result.returncode != 0
    assert "is invalid" in result.stderr or "unknown field" in result.stderr, result.stderr
    assert field in result.stderr, result.stderr
    assert "bogus" in result.stderr or path != "spec.slo.bogus"
    listed = await kubectl("-n", "inference", "get", "rm", "-o", "json")
    assert json.loads(listed.stdout)["items"] == []


async def test_a_deployment_scales_turns_ready_and_its_pods_go_with_it(api: ApiServer, kubectl: Any) -> None:
    await kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    await kubectl("scale", "deployment", "web", "--replicas=3")
    await kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=30s")
    await kubectl("wait", "--for=jsonpath={.status.readyReplicas}=3", "deployment/web", "--timeout=30s")
    pods = json.loads((await kubectl("get", "pods", "-l", "app=web", "-o", "json")).stdout)["items"]
    assert len(pods) == 3
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "Deployment" for p in pods)
    table = (await kubectl("get", "deployment", "web")).stdout.splitlines()
    assert table[1].split()[:4] == ["web", "3/3", "3", "3"]
    described = (await kubectl("describe", "deployment", "web")).stdout
    assert "ScalingPods" in described
    assert "2 created" in described  # the scale from 1 to 3
    await kubectl("delete", "deployment", "web")
    remaining = json.loads((await kubectl("get", "pods", "-o", "json")).stdout)["items"]
    assert remaining == []
    assert any(e["verb"] == "patch" and e["subresource"] == "scale" and "kubectl" in e["userAgent"] for e in api.audit)


async def test_describe_shows_the_events_of_an_object(api: ApiServer, kubectl: Any) -> None:
    await kubectl("apply", "-f", "-", stdin=NAMESPACE)
    await kubectl("apply", "-f", str(REPO / "examples" / "chat-p95-watts.yaml"))
    rm = json.loads((await kubectl("-n", "inference", "get", "rm", "chat", "-o", "json")).stdout)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "chat.1", "namespace": "inference"},
        "involvedObject": {
            "apiVersion": "thermostat.dev/v1alpha1",
            "kind": "RoutedModel",
            "name": "chat",
            "namespace": "inference",
            "uid": rm["metadata"]["uid"],
        },
        "reason": "TemperatureLowered",
        "message": "p95 0.82s > SLO 0.60s: temperature 1.0->0.6",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": {"component": "thermostat"},
    }
    await kubectl("apply", "-f", "-", stdin=yaml.safe_dump(event))
    described = (await kubectl("-n", "inference", "describe", "rm", "chat")).stdout
    assert "TemperatureLowered" in described
    assert "p95 0.82s > SLO 0.60s" in described


async def test_scale_down_removes_the_pods_with_the_lowest_deletion_cost(api: ApiServer, kubectl: Any) -> None:
    await kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("replicas: 1", "replicas: 3"))
    await kubectl("wait", "--for=jsonpath={.status.readyReplicas}=3", "deployment/web", "--timeout=30s")
    names = sorted(
        p["metadata"]["name"]
        for p in json.loads((await kubectl("get", "pods", "-l", "app=web", "-o", "json")).stdout)["items"]
    )
    keep = names[1]
    await kubectl("annotate", "pod", keep, "controller.kubernetes.io/pod-deletion-cost=100")
    await kubectl("scale", "deployment", "web", "--replicas=1")
    await kubectl("wait", "--for=jsonpath={.status.replicas}=1", "deployment/web", "--timeout=30s")
    left = [
        p["metadata"]["name"]
        for p in json.loads((await kubectl("get", "pods", "-l", "app=web", "-o", "json")).stdout)["items"]
    ]
    assert left == [keep]


async def test_finalizers_hold_deletion_until_removed(kubectl: Any) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [thermostat.dev/hold]}\n"
    await kubectl("apply", "-f", "-", stdin=cm)
    await kubectl("delete", "configmap", "held", "--wait=false")
    held = json.loads((await kubectl("get", "configmap", "held", "-o", "json")).stdout)
    assert held["metadata"]["deletionTimestamp"]
    await kubectl("patch", "configmap", "held", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    gone = await kubectl("get", "configmap", "held", check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr


async def test_lists_carry_kind_and_short_names_are_on_the_resource_only(api: ApiServer) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api.url}/api/v1/namespaces/default/configmaps") as response:
            listing = await response.json()
        async with session.get(f"{api.url}/apis/thermostat.dev/v1alpha1") as response:
            resources = (await response.json())["resources"]
    assert (listing["kind"], listing["apiVersion"]) == ("ConfigMapList", "v1")
    assert [r["name"] for r in resources if "rm" in r.get("shortNames", [])] == ["routedmodels"]
    assert "routedmodels/status" in [r["name"] for r in resources]


async def test_kubectl_create_generators_for_simple_kinds(kubectl: Any) -> None:
    await kubectl("create", "namespace", "team")
    await kubectl("-n", "team", "create", "configmap", "cfg", "--from-literal=routing_temperature=0.7")
    await kubectl("-n", "team", "create", "secret", "generic", "s", "--from-literal=password=hunter2")
    cm = json.loads((await kubectl("-n", "team", "get", "configmap", "cfg", "-o", "json")).stdout)
    assert cm["data"] == {"routing_temperature": "0.7"}
    secret = json.loads((await kubectl("-n", "team", "get", "secret", "s", "-o", "json")).stdout)
    assert secret["data"] == {"password": "aHVudGVyMg=="}
    refused = await kubectl("-n", "team", "create", "service", "clusterip", "web", "--tcp=80:80", check=False)
    assert refused.returncode != 0  # a kind the decoder does not know: never a silently wrong object
    assert "kubectl apply -f" in refused.stderr


HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
"""


async def test_horizontal_pod_autoscalers_are_served_as_autoscaling_v2(api: ApiServer, kubectl: Any) -> None:
    created = await kubectl("apply", "-f", "-", stdin=HPA)
    assert "horizontalpodautoscaler.autoscaling/web created" in created.stdout
    listed = json.loads((await kubectl("get", "hpa", "-o", "json")).stdout)["items"]
    assert [(h["apiVersion"], h["spec"]["scaleTargetRef"]["name"]) for h in listed] == [("autoscaling/v2", "web")]
    resources = (await kubectl("api-resources", "--api-group=autoscaling")).stdout
    assert "horizontalpodautoscalers" in resources
    assert "hpa" in resources
    await kubectl("patch", "hpa", "web", "--type=merge", "-p", '{"spec":{"maxReplicas":6}}')
    got = json.loads((await kubectl("get", "horizontalpodautoscaler.autoscaling", "web", "-o", "json")).stdout)
    assert (got["spec"]["maxReplicas"], got["metadata"]["generation"]) == (6, 2)
    await kubectl("delete", "hpa", "web")
    assert json.loads((await kubectl("get", "hpa", "-o", "json")).stdout)["items"] == []


async def test_kubectl_create_deployment_sends_protobuf_and_makes_a_running_deployment(kubectl: Any) -> None:
    await kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80")
    deployment = json.loads((await kubectl("get", "deployment", "web", "-o", "json")).stdout)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("nginx", "nginx:1.27")
    assert [port["containerPort"] for port in container["ports"]] == [80]
    await kubectl("wait", "--for=jsonpath={.status.readyReplicas}=2", "deployment/web", "--timeout=30s")
