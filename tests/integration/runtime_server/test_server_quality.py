"""Shadow quality (KL 0 and full agreement at exact, KL > 0 at T_min), the metrics contract on a live
server, and replay of a logged request with its recorded routing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from thermostat_runtime.request_log import read_record, replay

pytestmark = [pytest.mark.model, pytest.mark.slow]

openai = pytest.importorskip("openai")
MODEL = "SmolLM2-135M-Instruct"


def _shadow(samples: dict) -> tuple[float, float, float]:  # type: ignore[type-arg]
    return tuple(samples[(f"thermostat_shadow_{n}_total", ())] for n in ("tokens", "agree_tokens", "kl_nats"))  # type: ignore[return-value]


def test_shadow_kl_is_zero_at_exact_and_positive_at_t_min(start_server, scrape, server_engine) -> None:  # type: ignore[no-untyped-def]
    running = start_server(temperature=1.0, shadow_fraction=1.0)
    client = openai.OpenAI(base_url=running.v1, api_key="unused", max_retries=0, timeout=120)
    prompt = "The history of the Roman empire begins"
    reply = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0, seed=1)
    tokens, agree, kl = _shadow(scrape(running.url))
    assert tokens == reply.usage.completion_tokens + (reply.choices[0].finish_reason == "stop")  # type: ignore[union-attr]
    assert agree == tokens
    assert kl < 1e-9

    running.set_temperature(server_engine.t_min)
    client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0, seed=1)
    tokens_2, agree_2, kl_2 = _shadow(scrape(running.url))
    assert tokens_2 > tokens
    assert kl_2 - kl > 0.0
    assert agree_2 - agree <= tokens_2 - tokens


CONTRACT = {
    "thermostat_request_duration_seconds": "histogram",
    "thermostat_time_to_first_token_seconds": "histogram",
    "thermostat_time_per_output_token_seconds": "histogram",
    "thermostat_requests": "counter",
    "thermostat_tokens": "counter",
    "thermostat_requests_in_flight": "gauge",
    "thermostat_queue_depth": "gauge",
    "thermostat_routing_temperature": "gauge",
    "thermostat_flops_executed": "counter",
    "thermostat_flops_full": "counter",
    "thermostat_gpu_power_watts": "gauge",
    "thermostat_gpu_energy_joules": "counter",
    "thermostat_shadow_tokens": "counter",
    "thermostat_shadow_agree_tokens": "counter",
    "thermostat_shadow_kl_nats": "counter",
    "thermostat_shadow_kl_sq_nats": "counter",
    "thermostat_routing_config_stale": "gauge",
}


def test_live_metrics_parse_and_carry_the_contract_names(start_server) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    running = start_server(temperature=0.5)
    with urllib.request.urlopen(running.url + "/metrics", timeout=30) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    assert {name: families[name].type for name in CONTRACT} == CONTRACT
    assert families["thermostat_routing_temperature"].samples[0].value == 0.5
    power = families["thermostat_gpu_power_watts"].samples
    assert power
    assert all(s.labels["source"] in ("nvml", "estimate") and "gpu" in s.labels for s in power)
    for family in families.values():
        for sample in family.samples:
            assert not {"namespace", "pod", "routedmodel"} & set(sample.labels)


def test_replay_reproduces_a_logged_routed_request(start_server, server_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "requests.jsonl"
    running = start_server(temperature=server_engine.t_min, request_log=log)
    client = openai.OpenAI(base_url=running.v1, api_key="unused", max_retries=0, timeout=120)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=10, temperature=0.8, seed=42
    )
    record = read_record(log, reply.id)
    assert record["routing_temperature"] == server_engine.t_min
    assert record["routing_seed"] == 42
    assert json.loads(log.read_text().splitlines()[-1])["executed_fraction"] < 1.0
    result = replay(server_engine, record)
    assert result.matches
    assert result.text == reply.choices[0].message.content
    assert result.executed_fraction == pytest.approx(reply.usage.model_dump()["executed_fraction"])  # type: ignore[union-attr]


def test_replay_explain_reproduces_the_gates_of_requests_served_batched(  # type: ignore[no-untyped-def]
    start_server, server_engine, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    log = tmp_path / "requests.jsonl"
    running = start_server(temperature=0.5, request_log=log)
    client = openai.OpenAI(base_url=running.v1, api_key="unused", max_retries=0, timeout=120)
    questions = ["Name a colour.", "Count to five.", "What is two plus two?"]

    def ask(question: str) -> str:
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                               max_tokens=12, temperature=0.0, seed=7)  # fmt: skip
        return reply.id

    with ThreadPoolExecutor(3) as pool:
        ids = list(pool.map(ask, questions))
    records = [read_record(log, i) for i in ids]
    spans = [(r["ts"] - r["duration_s"], r["ts"]) for r in records]
    assert max(s for s, _ in spans) < min(e for _, e in spans), "the requests did not overlap: not batched"
    for record in records:
        # Every prompt and generated token is fed, except a last token that ended the request by length.
        fed = len(record["prompt_ids"]) + record["completion_tokens"]
        assert len(record["routing"]["gate_hashes"]) in (fed - 1, fed)
        result = replay(server_engine, record)
        assert result.matches
        assert result.explanation is not None
        assert result.explanation["gates_match"], result.explanation
    tampered = {**records[0], "routing": {**records[0]["routing"], "gate_hashes": ["0" * 16] * 3}}
    assert not replay(server_engine, tampered).explanation["gates_match"]  # type: ignore[index]


def _profile(t_min: float) -> dict:  # type: ignore[type-arg]
    point = {"flops_fraction": 1.0, "units_fraction": 1.0, "kl_nats": 0.0, "top1_agreement": 1.0,
             "perplexity": {"mean": 10.0, "ci95": [9.0, 11.0]}, "tokens_per_s": {"1": 15.0}}  # fmt: skip
    return {"schema_version": 1, "model": MODEL, "router_hash": "none", "device": "cpu: 2 cores",
            "provenance": "assumed", "t_min": t_min,
            "points": [{**point, "routing_temperature": t_min, "flops_fraction": 0.8},
                       {**point, "routing_temperature": 1.0}]}  # fmt: skip


def test_the_routing_profile_is_served(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    path = tmp_path / "profile.json"
    path.write_text(json.dumps(_profile(0.05)))
    running = start_server(profile_path=path)
    with urllib.request.urlopen(running.url + "/v1/routing/profile", timeout=30) as response:
        assert json.loads(response.read()) == _profile(0.05)
    path.write_text(json.dumps({**_profile(0.05), "t_min": "low"}))
    with pytest.raises(ValueError, match=r"profile\.json is invalid"):
        start_server(profile_path=path)


def test_replay_explain_reproduces_the_gates_of_a_request_served_in_a_batch_of_four_or_more(  # type: ignore[no-untyped-def]
    start_server, server_engine, tmp_path: Path
) -> None:
    """Six overlapping requests at T = 0.5: their decode steps run >= 4 rows, where the kernel plan runs
    masked-dense products (logged as ``hash@rows``); ``thermostat-runtime replay --explain`` reruns one
    such request alone and must match it gate for gate."""
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from thermostat_runtime.routing import PACKAGED_ROUTER_DIR, load_router

    if server_engine.router_hash != load_router(PACKAGED_ROUTER_DIR)[1]:
        pytest.skip("the CLI replays with the packaged router; this engine carries another")
    log = tmp_path / "requests.jsonl"
    running = start_server(temperature=0.5, request_log=log)
    client = openai.OpenAI(base_url=running.v1, api_key="unused", max_retries=0, timeout=300)
    prompts = ["The river", "A list of fruit:", "def square(x):", "Dear colleague,", "Once upon a time", "Step one:"]

    def ask(prompt: str) -> str:
        reply = client.completions.create(model=MODEL, prompt=prompt, max_tokens=16, temperature=0.0, seed=3,
                                          extra_body={"ignore_eos": True})  # fmt: skip
        return reply.id

    with ThreadPoolExecutor(len(prompts)) as pool:
        ids = list(pool.map(ask, prompts))

    def widest(record: dict) -> int:  # type: ignore[type-arg]
        return max((int(h.rsplit("@", 1)[1]) for h in record["routing"]["gate_hashes"] if "@" in h), default=0)

    chosen = max((read_record(log, i) for i in ids), key=widest)
    assert widest(chosen) >= 4, "no decode step ran four or more rows: the requests were not batched"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(root / p) for p in ("runtime", "operator", "tools"))}
    result = subprocess.run(
        [sys.executable, "-m", "thermostat_runtime", "replay", str(log), "--request-id", chosen["request_id"],
         "--explain"], capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["matches"]
    assert summary["explain"]["gates_match"]
    assert summary["explain"]["tokens_checked"] == len(chosen["routing"]["gate_hashes"])
