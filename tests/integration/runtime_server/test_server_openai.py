"""The OpenAI Python client against the real server and model: list, complete, chat, stream; usage
carries the routing fields; the routing temperature file is applied without a restart and moves
``executed_fraction``; one request's counters move by exactly what it did."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]

openai = pytest.importorskip("openai")

MODEL = "SmolLM2-135M-Instruct"
ROUTING_FIELDS = ("routing_temperature", "routing_seed", "executed_fraction")


def _client(running):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=running.v1, api_key="unused", max_retries=0, timeout=120)


def test_the_openai_client_lists_completes_chats_and_streams(start_server) -> None:  # type: ignore[no-untyped-def]
    client = _client(start_server())
    models = client.models.list()
    assert [m.id for m in models.data] == ["SmolLM2-135M-Instruct"]

    completion = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=5, temperature=0, seed=7
    )
    assert completion.choices[0].text
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 5
    usage = completion.usage.model_dump()
    assert {field: usage[field] for field in ROUTING_FIELDS} == {
        "routing_temperature": 1.0, "routing_seed": 7, "executed_fraction": 1.0}  # fmt: skip

    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content
    assert chat.choices[0].finish_reason in ("stop", "length")

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert all(field in final.usage.model_dump() for field in ROUTING_FIELDS)
    assert 1 <= final.usage.completion_tokens <= 6


def test_a_stop_string_ends_the_text_before_it(start_server) -> None:  # type: ignore[no-untyped-def]
    client = _client(start_server())
    free = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0)
    assert "," in free.choices[0].text
    stopped = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[","])
    assert "," not in stopped.choices[0].text
    assert free.choices[0].text.startswith(stopped.choices[0].text)
    assert stopped.choices[0].finish_reason == "stop"


def test_a_file_change_moves_executed_fraction_without_restart(start_server, server_engine) -> None:  # type: ignore[no-untyped-def]
    running = start_server(temperature=1.0)
    client = _client(running)

    def routed() -> tuple[float, float]:
        reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=16, temperature=0, seed=3)
        usage = reply.usage.model_dump()  # type: ignore[union-attr]
        return float(usage["executed_fraction"]), float(usage["routing_temperature"])

    assert routed() == (1.0, 1.0)
    running.set_temperature(server_engine.t_min / 10)  # below T_min: clamped, still served
    low, applied = routed()
    assert applied == server_engine.t_min
    running.set_temperature(0.5)
    middle, applied = routed()
    assert applied == 0.5
    assert low < middle < 1.0


def test_counters_move_by_exactly_what_n_requests_did(start_server, scrape) -> None:  # type: ignore[no-untyped-def]
    running = start_server()
    client = _client(running)
    before = scrape(running.url)
    replies = [
        client.completions.create(model=MODEL, prompt=f"Item {i}:", max_tokens=3 + i, temperature=0) for i in range(3)
    ]
    after = scrape(running.url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert delta("thermostat_requests_total", code="200") == 3
    assert delta("thermostat_request_duration_seconds_count") == 3
    assert delta("thermostat_tokens_total", kind="prompt") == sum(r.usage.prompt_tokens for r in replies)  # type: ignore[union-attr]
    generated = sum(r.usage.completion_tokens for r in replies)  # type: ignore[union-attr]
    assert delta("thermostat_tokens_total", kind="generated") == generated
    assert delta("thermostat_time_to_first_token_seconds_count") == 3
    assert delta("thermostat_time_per_output_token_seconds_count") == generated - 3
    assert delta("thermostat_flops_executed_total") == delta("thermostat_flops_full_total") > 0
    assert delta("thermostat_requests_total", code="400") == 0
