"""Thermostat: a Kubernetes operator that keeps routed LLM inference inside its SLO and power budget.

Importing this package needs neither Kopf nor the Kubernetes client: the operator's handlers live in
``thermostat.handlers`` (``kopf run -m thermostat.handlers``), the API models in ``thermostat.api``.
"""

__version__ = "0.1.0"
