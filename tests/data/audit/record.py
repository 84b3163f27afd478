"""Record the status fixtures of the audit tests: the real law in the simulator, status as the operator writes it.

Run from the repository root: ``python tests/data/audit/record.py``. It writes, for each scenario,
``<name>.status.json`` (the RoutedModel status at the end) and ``<name>.log.jsonl`` (every decision as
the operator's JSON log line). Scenarios:
- ``azure``: the first 20 minutes of the shared Azure conversation trace at 3x its rate, the
  benchmark's spec (benchmarks/chat-azure.yaml), the assumed H100 profile;
- ``outage``: a steady synthetic load whose latency and request-rate signals go missing from
  300 s to 480 s (a Prometheus outage): the law holds, then resumes.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "runtime"), str(ROOT / "tools"), str(ROOT / "tests" / "unit")]

from control_plant import assumed_profile  # noqa: E402

from thermostat.control import Missing, Observation  # noqa: E402
from thermostat.reconcile.audit import log_decision  # noqa: E402
from thermostat.sim.audited import AuditedLawController  # noqa: E402
from thermostat.sim.report import load_spec  # noqa: E402
from thermostat.sim.run import SimConfig, simulate  # noqa: E402
from thermostat.sim.trace import Trace, load_azure_trace, scale_rate, synthetic_trace  # noqa: E402
from thermostat.status.savings import unix  # noqa: E402
from thermostat.telemetry import AUDIT_LOGGER, JsonFormatter  # noqa: E402

HERE = Path(__file__).resolve().parent
TRACE = ROOT.parent / "shared" / "data" / "traces" / "azure_llm_conv_2023.csv"
OUTAGE = (300.0, 480.0)


def head(trace: Trace, seconds: float) -> Trace:
    keep = trace.arrival_s < seconds
    return Trace(trace.arrival_s[keep], trace.context_tokens[keep], trace.generated_tokens[keep], name=trace.name)


def outage(observation: Observation, now: float) -> Observation:
    if OUTAGE[0] <= now < OUTAGE[1]:
        down = Missing("QueryFailed: connection refused")
        signals = ("latency_s", "request_rate", "token_rate", "power_w", "energy_rate_w")
        return replace(observation, **dict.fromkeys(signals, down))  # type: ignore[arg-type]
    return observation


def _decision_clock(line: logging.LogRecord) -> bool:
    """Stamp each line with its decision's time, so re-recording changes nothing that did not change."""
    decision = getattr(line, "audit_decision", {})
    line.created, line.msecs = unix(decision["time"]), 0.0
    return True


def log_lines(controller: AuditedLawController, namespace: str, name: str) -> str:
    """The trail as the operator logs it: thermostat.audit through the JSON formatter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_decision_clock)
    logger = logging.getLogger(AUDIT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for record in controller.trail:
            log_decision(namespace, name, record)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def record(name: str, controller: AuditedLawController, trace: Trace) -> None:
    simulate(trace, controller.spec, controller.profile, controller, SimConfig(dt_s=0.2))
    assert controller.status is not None
    status = controller.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    (HERE / f"{name}.status.json").write_text(json.dumps(status, indent=1) + "\n")
    (HERE / f"{name}.log.jsonl").write_text(log_lines(controller, "inference", "chat"))


def main() -> None:
    profile = assumed_profile()
    spec = load_spec(ROOT / "benchmarks" / "chat-azure.yaml")
    azure = head(scale_rate(load_azure_trace(TRACE), 3.0), 1200.0)
    record("azure", AuditedLawController(spec, profile), azure)
    steady = synthetic_trace(duration_s=900.0, mean_rate=4.0, diurnal_amplitude=0.0, bursts=(), flash_crowds=(), seed=3)
    record("outage", AuditedLawController(spec, profile, tamper=outage), steady)


if __name__ == "__main__":
    main()
