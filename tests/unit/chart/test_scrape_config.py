"""One relabelling everywhere: the chart's values block, its plain scrape config, the tests' and the
local stack's Prometheus; and the pod role's meta labels as Prometheus's discovery sets them."""

from __future__ import annotations

import pytest
import yaml

from chart_support import ALL_ON, CHART, find, render
from thermostat_stack.poddiscovery import target_groups
from thermostat_stack.scrape import chart_relabelings, relabel_configs, runtime_relabel_configs

pytestmark = pytest.mark.fast


def test_the_stacks_copy_of_the_relabelling_is_the_charts() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["monitoring"]
    assert chart_relabelings() == {"selection": values["selection"], "relabelings": values["relabelings"]}, (
        "tools/thermostat_stack/scrape_relabelings.yaml differs from the chart's monitoring values: copy them over"
    )


def test_the_charts_scrape_config_is_the_one_the_tests_run() -> None:
    (configmap,) = find(render(ALL_ON), "ConfigMap", "thermostat-scrape-config")
    jobs = yaml.safe_load(configmap["data"]["scrape-configs.yaml"])
    runtime = next(j for j in jobs if j["job_name"] == "thermostat-runtime")
    assert runtime["relabel_configs"] == runtime_relabel_configs()
    assert runtime["kubernetes_sd_configs"] == [{"role": "pod"}]


def test_relabelings_convert_to_prometheus_spelling_and_refuse_unknown_keys() -> None:
    assert relabel_configs([{"sourceLabels": ["a"], "targetLabel": "b", "action": "Replace"}]) == [
        {"source_labels": ["a"], "target_label": "b", "action": "replace"}
    ]
    with pytest.raises(ValueError, match="targetlabel"):
        relabel_configs([{"targetlabel": "b"}])


def test_pod_targets_carry_the_pod_roles_meta_labels_one_per_container_port() -> None:
    pod = {
        "metadata": {"name": "chat-1", "namespace": "it", "uid": "u",
                     "labels": {"thermostat.dev/routedmodel": "chat", "app.kubernetes.io/component": "runtime"}},
        "spec": {"containers": [{"name": "runtime", "image": "img",
                                 "ports": [{"name": "http", "containerPort": 8000}, {"containerPort": 9000}]}]},
        "status": {"podIP": "10.0.0.7", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip
    starting = {**pod, "metadata": {**pod["metadata"], "name": "chat-2"}, "status": {"phase": "Pending"}}
    groups = target_groups([pod, starting])
    assert [g["targets"] for g in groups] == [["10.0.0.7:8000"], ["10.0.0.7:9000"]]  # no IP yet: no target
    labels = groups[0]["labels"]
    assert labels["__meta_kubernetes_pod_label_thermostat_dev_routedmodel"] == "chat"
    assert labels["__meta_kubernetes_pod_labelpresent_app_kubernetes_io_component"] == "true"
    assert labels["__meta_kubernetes_pod_container_port_name"] == "http"
    assert labels["__meta_kubernetes_pod_ready"] == "true"
    assert (labels["__meta_kubernetes_namespace"], labels["__meta_kubernetes_pod_name"]) == ("it", "chat-1")
