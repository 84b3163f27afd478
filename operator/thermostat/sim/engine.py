"""The cluster model: batching replicas with prefill and decode, cold starts, admission control.

Time advances in ticks of ``dt`` seconds. Each ready replica holds up to ``max_batch`` requests in
service (continuous batching) and a FIFO queue of at most ``queue_limit``; an arrival goes to the
ready replica with the fewest outstanding requests, and is shed (429) when even that queue is
full. Within a tick a replica first prefills (prompts in slot order), then spends the rest of the
tick on decode steps of the requests whose prompt is done. Replicas that scale down drain: they
take no new requests and stop when empty. A starting replica draws idle power.

Shadow requests (``shadow_fraction``, drawn per request with a seeded generator) run as the runtime
runs them: an exact twin sequence in the same batch, fed the same tokens, so a shadowed request costs
its prefill and one more batch row at T = 1; its tokens count toward ``shadow_tokens`` and their KL
(the truth's) toward ``shadow_kl_nats``. A request is shadowed only while T < 1: at T = 1 the output is
bit-identical to exact and there is nothing to measure (the runtime must skip those too; DESIGN §3).

Per-pod settings (a staged rollout's tracks): replicas flagged in ``canary`` run at
``canary_temperature`` while the others run at ``temperature``; ``tracks`` tallies each track's
requests, requests within ``slo_target_s``, energy, shadow tokens and KL (and, on every canary
request, the true KL its tokens lost).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from thermostat.sim.trace import Trace
from thermostat.sim.truth import ReplicaPhysics

OFF, STARTING, READY, DRAINING = 0, 1, 2, 3
# Histogram buckets of the runtime's metrics (DESIGN §3), so the law sees what histogram_quantile gives;
# the runtime adds the SLO target to these (``with_slo_bucket``).
LATENCY_BUCKETS_S = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60])
# The buckets before issue 13 (kept to reproduce the earlier figures).
LEGACY_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
TPOT_BUCKETS_S = np.array([0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1])
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def with_slo_bucket(buckets: FloatArray, target_s: float) -> FloatArray:
    """The buckets with the SLO target as a boundary (the runtime reads it at pod start, DESIGN §3)."""
    return np.unique(np.append(buckets, target_s))


@dataclass
class Outcomes:
    """Per-request results: completion time (NaN if shed), first-token time."""

    completion_s: FloatArray
    first_token_s: FloatArray
    shed: npt.NDArray[np.bool_]


@dataclass
class TrackTally:
    """One track's running totals (a rollout's A/B figures are their increases over an interval)."""

    requests: float = 0.0
    within_slo: float = 0.0
    energy_j: float = 0.0
    shadow_tokens: float = 0.0
    shadow_kl_nats: float = 0.0
    tokens: float = 0.0
    kl_lost_nats: float = 0.0  # true KL over every generated token (what the track's users lost)


@dataclass
class Cluster:
    """The replicas, their queues and slots, and the running totals the metrics pipeline reads."""

    physics: ReplicaPhysics
    trace: Trace
    max_replicas: int
    latency_buckets_s: FloatArray = field(default_factory=LATENCY_BUCKETS_S.copy)
    temperature: float = 1.0
    energy_j: float = 0.0
    served: int = 0
    shed_count: int = 0
    generated_tokens: float = 0.0
    shadow_fraction: float = 0.0
    seed: int = 0
    shadow_tokens: float = 0.0
    shadow_kl_nats: float = 0.0
    queues: list[deque[int]] = field(default_factory=list)
    canary_temperature: float | None = None  # the canary track's temperature; None: one track
    slo_target_s: float = math.inf  # for the per-track tallies of requests within the SLO

    def __post_init__(self) -> None:
        r, b = self.max_replicas, self.physics.max_batch
        self.status = np.zeros(r, dtype=np.int64)
        self.ready_at = np.zeros(r)
        self.slot_req = np.full((r, b), -1, dtype=np.int64)
        self.slot_prefill = np.zeros((r, b))  # prompt tokens left
        self.slot_decode = np.zeros((r, b))  # generated tokens left
        self.slot_shadow = np.zeros((r, b), dtype=bool)  # an exact twin runs beside this request
        self.queues = [deque() for _ in range(r)]
        self.canary = np.zeros(r, dtype=bool)  # replicas on the canary track
        self._no_canary = np.zeros(r, dtype=bool)
        self.tracks = {name: TrackTally() for name in ("stable", "canary")}
        n = len(self.trace)
        self.outcomes = Outcomes(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool))
        self.shadowed = np.random.default_rng(self.seed).random(n) < self.shadow_fraction
        self.power_w = 0.0
        self.in_system_s = 0.0  # ∫ (queued + in service) dt, for Little's law
        self.next_arrival = 0
        # Cumulative histogram counts (last entry: +Inf) of request latency, TTFT and TPOT.
        self.histograms = {
            "RequestLatency": np.zeros(len(self.latency_buckets_s) + 1),
            "TimeToFirstToken": np.zeros(len(self.latency_buckets_s) + 1),
            "TimePerOutputToken": np.zeros(len(TPOT_BUCKETS_S) + 1),
        }

    # -- actuators -------------------------------------------------------------------------------
    def start(self, count: int, now: float, *, ready: bool = False) -> None:
        """Start ``count`` replicas (ready after the cold start, or at once for the initial ones)."""
        for _ in range(count):
            draining = np.flatnonzero(self.status == DRAINING)
            if len(draining):  # a draining replica is still loaded: it serves again at once
                self.status[draining[0]] = READY
                continue
            free = np.flatnonzero(self.status == OFF)
            if not len(free):
                return
            slot = free[0]
            self.status[slot] = READY if ready else STARTING
            self.ready_at[slot] = now if ready else now + self.physics.truth.cold_start_s

    def stop(self, count: int) -> None:
        """Remove ``count`` replicas: starting ones first, then the least busy ready ones (drained)."""
        for _ in range(count):
            starting = np.flatnonzero(self.status == STARTING)
            if len(starting):
                self.status[starting[np.argmax(self.ready_at[starting])]] = OFF
                continue
            ready = np.flatnonzero(self.status == READY)
            if len(ready) <= 1:
                return
            load = (self.slot_req[ready] >= 0).sum(axis=1) + np.array([len(self.queues[r]) for r in ready])
            self.status[ready[np.argmin(load)]] = DRAINING

    def set_replicas(self, wanted: int, now: float) -> None:
        """Move the number of starting + ready replicas to ``wanted``."""
        current = int(np.count_nonzero((self.status == STARTING) | (self.status == READY)))
        wanted = max(1, min(wanted, self.max_replicas))
        if wanted > current:
            self.start(wanted - current, now)
        elif wanted < current:
            self.stop(current - wanted)

    # -- observation helpers -----------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(starting + ready replicas, ready replicas)."""
        ready = int(np.count_nonzero(self.status == READY))
        return ready + int(np.count_nonzero(self.status == STARTING)), ready

    def queue_depth(self) -> int:
        return sum(len(q) for q in self.queues)

    # -- one tick ---------------------------------------------------------------------------------
    def tick(self, now: float, dt: float) -> None:
        """Advance the cluster from ``now`` to ``now + dt``."""
        starting = self.status == STARTING
        self.status[starting & (self.ready_at <= now)] = READY
        self._arrive(now + dt)
        self._admit(now)
        self.in_system_s += (self.queue_depth() + int(np.count_nonzero(self.slot_req >= 0))) * dt
        self._serve(now, dt)
        self._retire_drained()

    def _arrive(self, until: float) -> None:
        arrivals = self.trace.arrival_s
        ready = np.flatnonzero(self.status == READY)
        limit = self.physics.truth.queue_limit
        while self.next_arrival < len(arrivals) and arrivals[self.next_arrival] < until:
            i = self.next_arrival
            self.next_arrival += 1
            if not len(ready):
                self._shed(i)
                continue
            queued = np.array([len(self.queues[r]) for r in ready])
            busy = (self.slot_req[ready] >= 0).sum(axis=1) + queued
            choice = int(np.argmin(busy))
            if queued[choice] >= limit:
                self._shed(i)
            else:
                self.queues[ready[choice]].append(i)

    def _shed(self, i: int) -> None:
        self.outcomes.shed[i] = True
        self.shed_count += 1

    def _admit(self, now: float) -> None:
        routed = self.row_temperatures() < 1.0 - 1e-9  # exact replicas have nothing to shadow
        for r, queue in enumerate(self.queues):
            if not queue or self.status[r] == OFF:
                continue
            free = np.flatnonzero(self.slot_req[r] < 0)
            for slot in free[: len(queue)]:
                i = queue.popleft()
                self.slot_req[r, slot] = i
                self.slot_prefill[r, slot] = self.trace.context_tokens[i]
                self.slot_decode[r, slot] = self.trace.generated_tokens[i]
                self.slot_shadow[r, slot] = bool(self.shadowed[i]) and bool(routed[r])

    def canary_rows(self) -> npt.NDArray[np.bool_]:
        return self.canary if self.canary_temperature is not None else self._no_canary

    def row_temperatures(self) -> FloatArray:
        """Each replica's routing temperature (its track's)."""
        canary_t = self.temperature if self.canary_temperature is None else self.canary_temperature
        return np.where(self.canary_rows(), canary_t, self.temperature)

    def _per_row(self, rows: npt.NDArray[np.bool_], stable: FloatArray, canary: FloatArray) -> FloatArray:
        """The canary's value on canary rows, the stable one elsewhere (broadcast over the slots)."""
        mask = rows.reshape((-1,) + (1,) * (np.ndim(stable) - 1)) if np.ndim(stable) else rows
        return np.where(mask, canary, stable)

    def _serve(self, now: float, dt: float) -> None:
        phys, temp = self.physics, self.temperature
        rows_c = self.canary_rows()
        temp_c = self.canary_temperature if self.canary_temperature is not None else temp
        live = (self.status == READY) | (self.status == DRAINING)
        active = self.slot_req >= 0
        shadow = self.slot_shadow & active
        prefill_time = np.asarray(phys.prefill_s(self.slot_prefill, temp)) * active
        if rows_c.any():
            canary_prefill = np.asarray(phys.prefill_s(self.slot_prefill, temp_c)) * active
            prefill_time = self._per_row(rows_c, prefill_time, canary_prefill)
        if shadow.any():  # the exact twin's prompt too
            prefill_time = prefill_time + np.asarray(phys.prefill_s(self.slot_prefill, 1.0)) * shadow
        before = np.cumsum(prefill_time, axis=1) - prefill_time
        spent = np.clip(dt - before, 0.0, prefill_time)
        done_now = active & (prefill_time > 0) & (spent >= prefill_time - 1e-12)
        self.outcomes.first_token_s[self.slot_req[done_now]] = now + (before + spent)[done_now]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.slot_prefill = np.where(prefill_time > 0, self.slot_prefill * (1.0 - spent / prefill_time), 0.0)
        prefill_used = spent.sum(axis=1)
        decoding = active & (self.slot_prefill <= 1e-9)
        batch = decoding.sum(axis=1).astype(np.float64)
        twins = (decoding & shadow).sum(axis=1).astype(np.float64)
        decode_time = np.where(batch > 0, dt - prefill_used, 0.0)
        step, utilisation = phys.mixed_decode(batch, twins, temp)
        if rows_c.any():
            step_c, utilisation_c = phys.mixed_decode(batch, twins, temp_c)
            step, utilisation = np.where(rows_c, step_c, step), np.where(rows_c, utilisation_c, utilisation)
        self.slot_decode -= (decode_time / step)[:, None] * decoding
        self._complete(decoding & (self.slot_decode <= 0), now + dt, step)
        self._account_energy(dt, prefill_used, decode_time, utilisation, live)

    def _account_energy(
        self, dt: float, prefill_used: FloatArray, decode_time: FloatArray, utilisation: FloatArray,
        live: npt.NDArray[np.bool_],
    ) -> None:  # fmt: skip
        """The tick's energy per replica: prefill, decode and idle power; per track and in total."""
        phys, rows_c = self.physics, self.canary_rows()
        idle_time = dt - prefill_used - decode_time
        prefill_w: FloatArray | float = float(phys.power_w(np.array(phys.prefill_utilisation(self.temperature))))
        split = bool(rows_c.any()) and self.canary_temperature is not None
        if split:
            canary_w = float(phys.power_w(np.array(phys.prefill_utilisation(float(self.canary_temperature or 1.0)))))
            prefill_w = np.where(rows_c, canary_w, prefill_w)
        energy = (
            prefill_used * prefill_w + decode_time * phys.power_w(utilisation) + idle_time * phys.truth.idle_w
        ) * live
        served = float(energy.sum())
        canary = float((energy * rows_c).sum()) if split else 0.0
        self.tracks["canary"].energy_j += canary
        self.tracks["stable"].energy_j += served - canary
        total = served + dt * phys.truth.idle_w * float(np.count_nonzero(self.status == STARTING))
        self.energy_j += total
        self.power_w = total / dt

    def _complete(self, finished: npt.NDArray[np.bool_], end: float, step: FloatArray) -> None:
        if not finished.any():
            return
        rows = np.nonzero(finished)[0]
        ids = self.slot_req[finished]
        when = np.maximum(end + self.slot_decode[finished] * step[rows], end - 1.0)  # overshoot back in time
        self.outcomes.completion_s[ids] = when
        missing_first = np.isnan(self.outcomes.first_token_s[ids])
        self.outcomes.first_token_s[ids[missing_first]] = when[missing_first]
        self.served += len(ids)
        self.generated_tokens += float(self.trace.generated_tokens[ids].sum())
        twins = self.slot_shadow[finished]
        if self.canary_rows().any():
            kl = np.array([self.physics.kl_nats(float(t)) for t in self.row_temperatures()[rows]])
        else:  # one track: one temperature (the common case, kept fast)
            kl = np.full(len(rows), self.physics.kl_nats(self.temperature))
        if twins.any():
            tokens = float(self.trace.generated_tokens[ids[twins]].sum())
            self.shadow_tokens += tokens
            self.shadow_kl_nats += float((self.trace.generated_tokens[ids[twins]] * kl[twins]).sum())
        arrival = self.trace.arrival_s[ids]
        self._tally(ids, rows, twins, kl, when - arrival)
        first = self.outcomes.first_token_s[ids]
        per_token = (when - first) / np.maximum(self.trace.generated_tokens[ids] - 1.0, 1.0)
        for name, values, buckets in (
            ("RequestLatency", when - arrival, self.latency_buckets_s),
            ("TimeToFirstToken", first - arrival, self.latency_buckets_s),
            ("TimePerOutputToken", per_token, TPOT_BUCKETS_S),
        ):
            np.add.at(self.histograms[name], np.searchsorted(buckets, values, side="left"), 1.0)
        self.slot_req[finished] = -1
        self.slot_decode[finished] = 0.0
        self.slot_shadow[finished] = False

    def _tally(self, ids: IntArray, rows: IntArray, twins: npt.NDArray[np.bool_], kl: FloatArray,
               latency: FloatArray) -> None:  # fmt: skip
        """Each finished request's figures, on its replica's track."""
        on_canary = self.canary_rows()[rows]
        tokens = self.trace.generated_tokens[ids]
        for name, mask in (("canary", on_canary), ("stable", ~on_canary)):
            if not mask.any():
                continue
            tally = self.tracks[name]
            tally.requests += float(mask.sum())
            tally.within_slo += float((mask & (latency <= self.slo_target_s)).sum())
            tally.tokens += float(tokens[mask].sum())
            tally.kl_lost_nats += float((tokens[mask] * kl[mask]).sum())
            tally.shadow_tokens += float(tokens[mask & twins].sum())
            tally.shadow_kl_nats += float((tokens[mask & twins] * kl[mask & twins]).sum())

    def _retire_drained(self) -> None:
        for r in np.flatnonzero(self.status == DRAINING):
            if not self.queues[r] and not (self.slot_req[r] >= 0).any():
                self.status[r] = OFF
