"""Fixtures for integration tests: a real Prometheus (``thermostat.promserver``) and exporters of the
runtime's metric contract (DESIGN §3) whose series a test sets directly.

``runtime_exporter`` serves the contract's series on a free loopback port; ``prometheus`` scrapes it
every 0.5 s with the scoping labels of the test's RoutedModel (namespace ``it``, routedmodel ``chat``).
Other suites reuse ``PrometheusServer`` and ``SeriesExporter`` as they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from thermostat.promserver import PrometheusServer, ScrapeTarget, free_port

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
TPOT_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1)
SCOPE_LABELS = {"namespace": "it", "routedmodel": "chat"}


class SeriesExporter:
    """The runtime's /metrics series (names and labels of DESIGN §3), set by the test, on a free port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "thermostat_request_duration_seconds", "Request latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram("thermostat_time_to_first_token_seconds", "TTFT", buckets=LATENCY_BUCKETS, registry=r)
        self.tpot = Histogram("thermostat_time_per_output_token_seconds", "TPOT", buckets=TPOT_BUCKETS, registry=r)
        self.requests = Counter("thermostat_requests", "Requests", ["code"], registry=r)
        self.tokens = Counter("thermostat_tokens", "Tokens", ["kind"], registry=r)
        self.queue_depth = Gauge("thermostat_queue_depth", "Queued requests", registry=r)
        self.power = Gauge("thermostat_gpu_power_watts", "GPU power", ["gpu", "source"], registry=r)
        self.energy = Counter("thermostat_gpu_energy_joules", "GPU energy", ["gpu", "source"], registry=r)
        self.shadow = Counter("thermostat_shadow_tokens", "Shadow tokens", registry=r)
        self.shadow_agree = Counter("thermostat_shadow_agree_tokens", "Agreeing shadow tokens", registry=r)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=r)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def runtime_exporter() -> Iterator[SeriesExporter]:
    exporter = SeriesExporter()
    yield exporter
    exporter.close()


@pytest.fixture
def prometheus(runtime_exporter: SeriesExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping ``runtime_exporter`` as pod ``chat-0`` of RoutedModel it/chat."""
    target = ScrapeTarget(runtime_exporter.address, {**SCOPE_LABELS, "pod": "chat-0"})
    with PrometheusServer(targets=[target], scrape_interval_s=0.5) as server:
        server.wait_for_series('up{routedmodel="chat"} == 1', timeout_s=30)
        yield server
