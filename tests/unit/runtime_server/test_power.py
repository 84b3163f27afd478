"""Power: without NVML the estimate is exported, labelled source="estimate", and grows with measured
busy time; with NVML, energy comes from the driver's millijoule counter, or from sampled power where
the counter is unsupported. The NVML cases use a small stand-in for the ``pynvml`` module (no GPU here);
the real NVML path is exercised on a GPU machine."""

from __future__ import annotations

from typing import Any

import pytest

from thermostat_runtime.metrics import RuntimeMetrics
from thermostat_runtime.power import PowerMonitor, WorkCounters, load_nvml

pytestmark = pytest.mark.fast


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _value(metrics: RuntimeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_without_nvml_nothing_fails_and_the_estimate_is_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    pynvml = pytest.importorskip("pynvml")

    def no_library() -> None:
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    assert load_nvml() is None
    metrics, clock = RuntimeMetrics(), Clock()
    work = WorkCounters(0.0, 0.0, 0.0)
    monitor = PowerMonitor(metrics, lambda: work, nvml=None, clock=clock)
    assert monitor.source == "estimate"
    clock.now += 10.0
    monitor.sample()  # idle: 10 s at 90 W
    assert _value(metrics, "thermostat_gpu_power_watts", gpu="0", source="estimate") == 90.0
    assert _value(metrics, "thermostat_gpu_energy_joules_total", gpu="0", source="estimate") == pytest.approx(900.0)
    work = WorkCounters(busy_s=5.0, flops_executed=60.0, flops_full=100.0)
    clock.now += 10.0
    monitor.sample()  # half busy at 60% of exact's FLOPs
    expected_w = 90 + (700 - 90) * 0.5 * 0.6
    assert _value(metrics, "thermostat_gpu_power_watts", gpu="0", source="estimate") == pytest.approx(expected_w)
    energy = _value(metrics, "thermostat_gpu_energy_joules_total", gpu="0", source="estimate")
    assert energy == pytest.approx(900.0 + 10 * expected_w)
    assert _value(metrics, "thermostat_gpu_power_watts", gpu="0", source="nvml") is None


class FakeNvml:
    """What PowerMonitor calls of pynvml, for two GPUs: one with an energy counter, one without."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.energy_mj = {0: 1_000_000}
        self.power_mw = {0: 350_000, 1: 200_000}

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - NVML's names
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        if handle not in self.energy_mj:
            raise self.NVMLError("Not Supported")
        return self.energy_mj[handle]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        return self.power_mw[handle]


def test_with_nvml_energy_comes_from_the_counter_or_integrated_power() -> None:
    nvml: Any = FakeNvml()
    metrics, clock = RuntimeMetrics(), Clock()
    monitor = PowerMonitor(metrics, lambda: WorkCounters(0, 0, 0), nvml=nvml, clock=clock)
    assert monitor.source == "nvml"
    nvml.energy_mj[0] += 2_500_000  # 2500 J in the interval, whatever the sampled power says
    clock.now += 5.0
    monitor.sample()
    assert _value(metrics, "thermostat_gpu_energy_joules_total", gpu="0", source="nvml") == pytest.approx(2500.0)
    assert _value(metrics, "thermostat_gpu_power_watts", gpu="0", source="nvml") == 350.0
    assert _value(metrics, "thermostat_gpu_energy_joules_total", gpu="1", source="nvml") == pytest.approx(1000.0)
    assert _value(metrics, "thermostat_gpu_power_watts", gpu="1", source="nvml") == 200.0
    assert _value(metrics, "thermostat_gpu_power_watts", gpu="0", source="estimate") is None
