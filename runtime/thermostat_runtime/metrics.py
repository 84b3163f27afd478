"""The runtime's Prometheus series, exactly as DESIGN §3's table (names, types, buckets, labels).

Each server owns its own ``CollectorRegistry`` so that several servers can live in one process (tests)
without colliding. The scoping labels ``namespace``, ``pod`` and ``routedmodel`` are never added here:
the scrape configuration attaches them. ``docs/metrics.md`` ("Runtime series") documents every series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60)
TPOT_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1)
RESPONSE_CODES = ("200", "400", "429", "500")
CONTENT_TYPE = CONTENT_TYPE_LATEST


def with_boundary(buckets: tuple[float, ...], boundary: float | None) -> tuple[float, ...]:
    """The contract's buckets plus the SLO target as one more boundary (DESIGN §3), in order.

    With the target a boundary, the share of requests within the SLO is a bucket's count (exact) and
    the quantile at the target is not interpolated across a wide bucket.
    """
    if boundary is None or boundary in buckets:
        return buckets
    return tuple(sorted((*buckets, boundary)))


class RuntimeMetrics:
    """Every series of the contract, registered in one registry.

    ``slo_target_seconds`` (the routing ConfigMap's ``slo_target_seconds`` read at start, or
    ``--slo-target-seconds``) is added to the three latency histograms' buckets; the metric names and
    the other boundaries stay the contract's.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, slo_target_seconds: float | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.slo_target_seconds = slo_target_seconds
        self.request_duration = Histogram(
            "thermostat_request_duration_seconds",
            "Time from a request's arrival to its last byte.",
            buckets=with_boundary(LATENCY_BUCKETS_S, slo_target_seconds),
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "thermostat_time_to_first_token_seconds",
            "Time from a request's arrival to its first generated token.",
            buckets=with_boundary(LATENCY_BUCKETS_S, slo_target_seconds),
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "thermostat_time_per_output_token_seconds",
            "Time between consecutive generated tokens of a request (one observation per interval).",
            buckets=with_boundary(TPOT_BUCKETS_S, slo_target_seconds),
            registry=r,
        )
        self.requests = Counter("thermostat_requests", "Requests answered, by HTTP status code.", ["code"], registry=r)
        self.tokens = Counter("thermostat_tokens", "Tokens processed, by kind.", ["kind"], registry=r)
        self.in_flight = Gauge(
            "thermostat_requests_in_flight", "Requests admitted and not yet finished (batch + queue).", registry=r
        )
        self.queue_depth = Gauge(
            "thermostat_queue_depth", "Admitted requests waiting for a slot in the batch.", registry=r
        )
        self.routing_temperature = Gauge(
            "thermostat_routing_temperature", "Routing temperature applied to the next forward pass.", registry=r
        )
        self.flops_executed = Counter(
            "thermostat_flops_executed", "Weight-matmul FLOPs actually run for served tokens.", registry=r
        )
        self.flops_full = Counter(
            "thermostat_flops_full", "Weight-matmul FLOPs the exact model would run for the same tokens.", registry=r
        )
        self._init_power_and_quality(r)
        for code in RESPONSE_CODES:
            self.requests.labels(code=code)
        for kind in ("prompt", "generated"):
            self.tokens.labels(kind=kind)

    def _init_power_and_quality(self, r: CollectorRegistry) -> None:
        self.gpu_power = Gauge(
            "thermostat_gpu_power_watts", "GPU power draw (source=nvml measured, estimate modelled).",
            ["gpu", "source"], registry=r,
        )  # fmt: skip
        self.gpu_energy = Counter(
            "thermostat_gpu_energy_joules", "GPU energy since the runtime started (joules).",
            ["gpu", "source"], registry=r,
        )  # fmt: skip
        self.shadow_tokens = Counter(
            "thermostat_shadow_tokens", "Generated tokens compared against the exact model (shadow).", registry=r
        )
        self.shadow_agree_tokens = Counter(
            "thermostat_shadow_agree_tokens", "Shadow tokens whose top-1 matched the exact model's.", registry=r
        )
        self.shadow_kl_nats = Counter(
            "thermostat_shadow_kl_nats", "Sum over shadow tokens of KL(exact || routed) in nats.", registry=r
        )
        self.shadow_kl_sq_nats = Counter(
            "thermostat_shadow_kl_sq_nats",
            "Sum over shadow tokens of the squared KL(exact || routed), nats^2 (a rollout's quality interval).",
            registry=r,
        )
        self.routing_config_stale = Gauge(
            "thermostat_routing_config_stale", "1 while the routing ConfigMap watch is down.", registry=r
        )

    def exposition(self) -> bytes:
        """The text exposition format of every series."""
        return generate_latest(self.registry)
