"""``thermostat explain NAME [-n NS] [--log FILE]``: read a RoutedModel's status and print its story.

The status is read through ``thermostat.kube`` (the only module that talks to the API); the prose
is ``thermostat.status.explain``'s, printed with rich (colour on a terminal, plain text in a pipe).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from thermostat.status import parse_status
from thermostat.status.explain import explain, log_records
from thermostat.status.ledger_view import Price


def read_status(name: str, namespace: str, kubeconfig: Path | None) -> tuple[object | None, str | None]:
    """The RoutedModel's raw status (None when it has none yet), or why it could not be read."""
    try:
        from thermostat.kube import ApiException, Kube, load_api_client
    except ImportError as error:
        install = "pip install 'thermostat[operator]'"
        return None, f"thermostat explain reads the API through the 'operator' extra ({error}): {install}"
    try:
        kube = Kube(load_api_client(kubeconfig, user_agent="thermostat-explain"))
        body = kube.read_routedmodel(namespace, name)
    except ApiException as error:
        return None, f"the API server refused to read RoutedModel {namespace}/{name}: {error.status} {error.reason}"
    except Exception as error:  # config and connection errors come in many types; each says what went wrong
        return None, f"cannot reach the Kubernetes API ({type(error).__name__}: {error}); check --kubeconfig"
    if body is None:
        return None, f"RoutedModel {namespace}/{name} not found: check the name and -n NAMESPACE (kubectl get rm -A)"
    return body.get("status"), None


def run_explain(
    name: str,
    *,
    namespace: str,
    log: Path | None,
    kubeconfig: Path | None,
    limit: int,
    price_per_kwh: float | None,
    currency: str,
) -> int:
    """Print the explanation; returns the exit code (2: the status or the log could not be read)."""
    console, errors = Console(highlight=False), Console(stderr=True, highlight=False)
    if kubeconfig is not None and not kubeconfig.is_file():
        errors.print(f"kubeconfig {kubeconfig} does not exist: pass an existing file")
        return 2
    raw, problem = read_status(name, namespace, kubeconfig)
    if problem:
        errors.print(problem)
        return 2
    records = None
    if log is not None:
        try:
            with log.open(encoding="utf-8") as lines:
                records, unreadable = log_records(lines, namespace=namespace, name=name)
        except (OSError, UnicodeDecodeError) as error:
            errors.print(f"cannot read the log {log}: {error}")
            return 2
        if unreadable:
            errors.print(f"{unreadable} decision line(s) of {log} did not parse (another operator version?)")
    price = Price(price_per_kwh, currency) if price_per_kwh is not None else None
    status = parse_status(raw)
    console.print(
        explain(status, name=name, namespace=namespace, now=time.time(), log_records=records, limit=limit, price=price)
    )
    return 0
