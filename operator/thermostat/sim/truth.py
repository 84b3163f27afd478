"""The simulator's ground truth for one replica: step time, prefill time and power.

Mappings, stated once (docs/simulator.md shows results as they vary):

- **FLOPs → time.** Time per decode step at temperature T is the exact step time times
  ``α + (1 − α) · flops_fraction(T)``: a share ``α`` of the step (attention over the KV cache,
  kernel launches, sampling) does not shrink when MLP blocks are skipped. Default ``α = 0.3``.
  The exact step time at batch ``b`` is ``b / tokens_per_s(T=1, b)`` from the profile.
- **FLOPs → power.** ``P = P_idle + (P_max − P_idle) · u^γ`` with ``u`` the FLOP rate over the
  replica's peak (decode at the largest batch at T = 1, or prefill, counts as 1). H100 SXM5:
  ``P_max`` = 700 W, its TDP ("up to 700 W (configurable)", NVIDIA H100 Tensor Core GPU
  datasheet); ``P_idle`` = 90 W, inside the 70–100 W idle range that DESIGN §1 and issue 5 give
  (not measured here); ``γ`` = 0.7, an assumption (power concave in load, as DESIGN §1 states);
  docs/simulator.md shows the results at γ = 0.5 and 1.0.
- **Prefill** runs at ``prefill_tokens_per_s`` (16k/s at T = 1, compute-bound), before decoding.
- **Quality.** The true mean KL per token at T is the profile's times ``quality_factor``; the quality
  loss is ``100 × (exp(KL) − 1)`` percent (DESIGN §3). Shadow requests measure that KL.
- **Shadow twins** (an exact sequence beside a shadowed request in the batch) add a batch row whose
  step time and FLOPs are exact's: ``mixed_decode`` weighs the step's time fraction and FLOPs by row.

``--perturb`` moves this truth away from what the law assumes: capacity −20%, a steeper step time
in batch size, a 90 s cold start, a power exponent of 1.0 and routing 1.5x worse for quality (KL).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from thermostat.control.profile import Profile

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Truth:
    """Ground-truth parameters of the simulated replicas."""

    flops_time_alpha: float = 0.3
    capacity_factor: float = 1.0  # 0.8 = 20% less throughput than the profile
    batch_steepness: float = 0.0  # step time × (b / 8)^k for b > 8: a steeper latency curve
    idle_w: float = 90.0
    max_w: float = 700.0
    power_exponent: float = 0.7
    cold_start_s: float = 60.0
    prefill_tokens_per_s: float = 16000.0
    queue_limit: int = 64  # requests waiting per replica before 429
    quality_factor: float = 1.0  # true KL over the profile's


def perturbed(truth: Truth) -> Truth:
    """The --perturb ground truth: capacity −20%, steeper latency, 90 s cold start, power exponent 1.0,
    routing 1.5x worse for quality than the profile says."""
    return replace(
        truth, capacity_factor=0.8, batch_steepness=0.25, cold_start_s=90.0, power_exponent=1.0, quality_factor=1.5
    )


@dataclass(frozen=True)
class ReplicaPhysics:
    """Vectorised step time and power for a profile under a ground truth."""

    profile: Profile
    truth: Truth
    _batches: FloatArray = field(init=False, repr=False)
    _rates: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        batches, rates = self.profile.batch_table(1.0)
        object.__setattr__(self, "_batches", np.array((0.0, *batches)))
        object.__setattr__(self, "_rates", np.array((0.0, *rates)))

    @property
    def max_batch(self) -> int:
        return self.profile.max_batch

    def time_fraction(self, temperature: float) -> float:
        """Step time at T over exact's (the FLOPs → time mapping)."""
        alpha = self.truth.flops_time_alpha
        return alpha + (1.0 - alpha) * self.profile.flops_fraction(temperature)

    def step_s(self, batch: FloatArray, temperature: float) -> FloatArray:
        """Decode step time at each batch size (batch >= 1)."""
        b = np.maximum(batch, 1.0)
        exact = b / np.interp(b, self._batches, self._rates)
        steep = np.where(b > 8, (b / 8.0) ** self.truth.batch_steepness, 1.0)
        return exact * steep * self.time_fraction(temperature) / self.truth.capacity_factor

    def kl_nats(self, temperature: float) -> float:
        """True mean per-token KL(exact || routed) at ``temperature``."""
        return self.profile.kl_nats(temperature) * self.truth.quality_factor

    def quality_loss_percent(self, temperature: float) -> float:
        """True quality loss in percent at ``temperature``."""
        return self.profile.quality_loss_percent(temperature, self.truth.quality_factor)

    def mixed_decode(self, batch: FloatArray, twins: FloatArray, temperature: float) -> tuple[FloatArray, FloatArray]:
        """(step time, FLOP utilisation) of a decode step with ``batch`` routed rows and ``twins`` exact ones."""
        rows = batch + twins
        if not twins.any():
            return self.step_s(batch, temperature), self.decode_utilisation(batch, temperature)
        fraction = self.time_fraction(temperature)
        weight = (batch * fraction + twins) / np.maximum(rows * fraction, 1e-12)
        step = self.step_s(rows, temperature) * np.where(rows > 0, weight, 1.0)
        flops = (batch * self.profile.flops_fraction(temperature) + twins) / np.maximum(rows, 1e-12)
        peak = float(self._rates[-1]) * self.truth.capacity_factor
        utilisation = np.clip(np.maximum(rows, 1.0) / step * flops / peak, 0.0, 1.0)
        return step, np.asarray(utilisation)

    def prefill_s(self, tokens: FloatArray | float, temperature: float) -> FloatArray | float:
        """Prefill time of a prompt."""
        speed = self.truth.prefill_tokens_per_s * self.truth.capacity_factor
        return tokens / speed * self.time_fraction(temperature)

    def power_w(self, utilisation: FloatArray) -> FloatArray:
        """Power at FLOP utilisation ``u`` in [0, 1]."""
        t = self.truth
        return t.idle_w + (t.max_w - t.idle_w) * np.clip(utilisation, 0.0, 1.0) ** t.power_exponent

    def decode_utilisation(self, batch: FloatArray, temperature: float) -> FloatArray:
        """FLOP rate over peak while decoding at ``batch``."""
        b = np.maximum(batch, 1.0)
        peak = float(self._rates[-1])
        flops = self.profile.flops_fraction(temperature)
        tokens_per_s = b / self.step_s(b, temperature)
        return np.asarray(np.clip(tokens_per_s * flops / (peak * self.truth.capacity_factor), 0.0, 1.0))

    def prefill_utilisation(self, temperature: float) -> float:
        """FLOP rate over peak while prefilling."""
        return min(1.0, self.profile.flops_fraction(temperature) / self.time_fraction(temperature))
