"""The batching scheduler with a tiny real torch engine (an 8-token vocabulary and one linear layer,
through the same ``Engine`` interface as the model): the queue bound, the batch bound, a failing
forward pass answered as an error without stopping the worker, and routing changes recorded mid-request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from thermostat_runtime.metrics import RuntimeMetrics
from thermostat_runtime.scheduler import FinishEvent, GenerationRequest, QueueFullError, Scheduler
from tiny_engine import TinyEngine

pytestmark = pytest.mark.fast


def _request(i: int, max_tokens: int = 5) -> GenerationRequest:
    return GenerationRequest(f"r{i}", [1, 2, 3], max_tokens, temperature=0.0, top_p=1.0, seed=i)


async def _finish(handle: Any) -> FinishEvent:
    while True:
        event = await asyncio.wait_for(handle.events.get(), timeout=30)
        if isinstance(event, FinishEvent):
            return event


async def test_the_queue_is_bounded_and_the_batch_too() -> None:
    engine = TinyEngine()
    scheduler = Scheduler(engine, RuntimeMetrics(), lambda: 1.0, max_batch=2, max_queue=3)
    loop = asyncio.get_running_loop()
    handles = [scheduler.submit(_request(i), loop) for i in range(3)]
    with pytest.raises(QueueFullError) as full:
        scheduler.submit(_request(9), loop)
    assert full.value.retry_after_s >= 1
    scheduler.start()
    results = [await _finish(h) for h in handles]
    scheduler.stop()
    assert [len(r.result.token_ids) for r in results] == [5, 5, 5]
    assert max(engine.batch_sizes) == 2
    assert scheduler.flops_full == scheduler.flops_executed == 3 * 10.0 * (3 + 4)


async def test_a_failed_step_answers_error_and_the_worker_keeps_serving() -> None:
    engine = TinyEngine()
    scheduler = Scheduler(engine, RuntimeMetrics(), lambda: 1.0)
    scheduler.start()
    engine.fail_next = True
    failed = await _finish(scheduler.submit(_request(0), asyncio.get_running_loop()))
    served = await _finish(scheduler.submit(_request(1), asyncio.get_running_loop()))
    scheduler.stop()
    assert failed.result.finish_reason == "error"
    assert served.result.finish_reason == "length"


async def test_a_routing_change_applies_to_running_requests_and_is_recorded() -> None:
    engine = TinyEngine()
    engine.pause_after = 3
    temperature = [1.0]
    scheduler = Scheduler(engine, RuntimeMetrics(), lambda: temperature[0])
    handle = scheduler.submit(_request(0, max_tokens=40), asyncio.get_running_loop())
    scheduler.start()
    await asyncio.get_running_loop().run_in_executor(None, engine.paused.wait, 30)
    temperature[0] = 0.05  # below T_min: applied clamped, from the step after the paused one
    engine.resume.set()
    result = (await _finish(handle)).result
    scheduler.stop()
    assert result.routing_temperature == 1.0  # the request started at exact
    assert len(result.routing_changes) == 1
    index, applied = result.routing_changes[0]
    assert applied == 0.1
    assert index == 4
    assert engine.temperatures[-1] == 0.1
    assert result.executed_fraction < 1.0


async def test_stopping_answers_whatever_is_left_as_errors() -> None:
    engine = TinyEngine()
    engine.pause_after = 1
    scheduler = Scheduler(engine, RuntimeMetrics(), lambda: 1.0, max_batch=1)
    loop = asyncio.get_running_loop()
    handles = [scheduler.submit(_request(i, max_tokens=30), loop) for i in range(2)]
    scheduler.start()
    await loop.run_in_executor(None, engine.paused.wait, 30)
    stopping = loop.run_in_executor(None, scheduler.stop)  # as after a drain that timed out
    while not scheduler._stopping:
        await asyncio.sleep(0.001)
    engine.resume.set()
    await stopping
    results = [(await _finish(h)).result for h in handles]
    assert [r.finish_reason for r in results] == ["error", "error"]
    assert len(results[0].token_ids) == 2  # the running one got its tokens so far
    assert results[1].token_ids == []
    assert scheduler.pending() == 0
