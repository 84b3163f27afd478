"""GPU power and energy: NVML when there is a GPU, a labelled estimate when there is not.

With NVML (nvidia-ml-py, module ``pynvml``) every visible GPU ``i`` is sampled each interval:
``thermostat_gpu_power_watts{gpu="i",source="nvml"}`` from ``nvmlDeviceGetPowerUsage`` (mW), and
``thermostat_gpu_energy_joules_total{gpu="i",source="nvml"}`` from deltas of the driver's energy
counter ``nvmlDeviceGetTotalEnergyConsumption`` (mJ, Volta and later); where that counter is not
supported, energy is sampled power integrated over the interval.

Without NVML (no driver, no GPU: this CPU machine) nothing fails; one series pair is exported with
``gpu="0",source="estimate"``, the power of an H100-like GPU (DESIGN §1: about 90 W idle, 700 W at full
load; 700 W is the H100 SXM TDP in NVIDIA's datasheet) doing the work this process measured::

    P = P_idle + (P_max - P_idle) * busy_fraction * flops_fraction

``busy_fraction`` is the share of the interval the engine spent inside forward passes and
``flops_fraction`` the executed/exact FLOP ratio of the tokens served in it (routing skips MLP work,
which lowers a GPU's draw at the same occupancy). Energy is P integrated over the interval. It is an
estimate, labelled so — never an unlabelled guess.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thermostat_runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

IDLE_WATTS = 90.0
MAX_WATTS = 700.0


@dataclass
class WorkCounters:
    """Monotone counters of the engine's work, read at every sample."""

    busy_s: float
    flops_executed: float
    flops_full: float


def load_nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None where there is no NVML (logged, not raised)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception as error:  # ImportError, NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded...
        log.info('NVML unavailable (%s): GPU power is estimated, source="estimate"', error)
        return None


class _NvmlGpu:
    def __init__(self, nvml: Any, index: int) -> None:
        self.nvml, self.label = nvml, str(index)
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.last_energy_mj: int | None = self._energy_mj()

    def _energy_mj(self) -> int | None:
        try:
            return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except self.nvml.NVMLError:
            return None

    def sample(self, interval_s: float) -> tuple[float, float]:
        """(power W, energy J in the interval)."""
        power_w = self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        if self.last_energy_mj is None:
            return power_w, power_w * interval_s
        now_mj = self._energy_mj()
        if now_mj is None:
            return power_w, power_w * interval_s
        delta_mj, self.last_energy_mj = max(0, now_mj - self.last_energy_mj), now_mj
        return power_w, delta_mj / 1000.0


class PowerMonitor:
    """Samples power into the metrics every ``interval_s`` (see the module docstring)."""

    def __init__(
        self,
        metrics: RuntimeMetrics,
        work: Callable[[], WorkCounters],
        *,
        nvml: Any | None = None,
        idle_w: float = IDLE_WATTS,
        max_w: float = MAX_WATTS,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics, self.work, self.clock = metrics, work, clock
        self.idle_w, self.max_w, self.interval_s = idle_w, max_w, interval_s
        self.gpus = [_NvmlGpu(nvml, i) for i in range(nvml.nvmlDeviceGetCount())] if nvml is not None else []
        self.source = "nvml" if self.gpus else "estimate"
        self._last_t = clock()
        self._last_work = work()
        self._task: asyncio.Task[None] | None = None
        for label in [g.label for g in self.gpus] or ["0"]:
            self.metrics.gpu_power.labels(gpu=label, source=self.source).set(0.0 if self.gpus else idle_w)
            self.metrics.gpu_energy.labels(gpu=label, source=self.source)

    def sample(self) -> None:
        now = self.clock()
        interval_s, self._last_t = max(0.0, now - self._last_t), now
        if self.gpus:
            for gpu in self.gpus:
                power_w, energy_j = gpu.sample(interval_s)
                self._record(gpu.label, power_w, energy_j)
            return
        work, last = self.work(), self._last_work
        self._last_work = work
        busy = min(1.0, (work.busy_s - last.busy_s) / interval_s) if interval_s > 0 else 0.0
        full = work.flops_full - last.flops_full
        flops_fraction = (work.flops_executed - last.flops_executed) / full if full > 0 else 1.0
        power_w = self.estimate_watts(busy, flops_fraction)
        self._record("0", power_w, power_w * interval_s)

    def estimate_watts(self, busy_fraction: float, flops_fraction: float) -> float:
        return self.idle_w + (self.max_w - self.idle_w) * busy_fraction * flops_fraction

    def _record(self, gpu: str, power_w: float, energy_j: float) -> None:
        self.metrics.gpu_power.labels(gpu=gpu, source=self.source).set(power_w)
        self.metrics.gpu_energy.labels(gpu=gpu, source=self.source).inc(energy_j)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.sample()
            except Exception:
                log.exception("power sample failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
