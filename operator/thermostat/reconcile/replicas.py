"""Who else sets the Deployment's replicas: one manual change is adopted, two in a row are a conflict.

Pure. Each run compares the live ``spec.replicas`` with the count Thermostat left there (``expected``).
A difference is an external change (a person's ``kubectl scale``, a GitOps sync undoing ours):
- the first is adopted as the starting point of the next decision and reported by an Event;
- a second before Thermostat's own write has held (``ReplicasOverridden``) raises the conflict:
  Thermostat stops changing replicas (the temperature still applies);
- the count resets once a replica write of Thermostat's holds for a run, or after ``quiet_s``
  without any external change: the person stopped, the conflict clears.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

OVERRIDE_LIMIT = 2


@dataclass(frozen=True)
class ReplicaWatch:
    """What the last run left behind, kept per RoutedModel in Kopf's memo."""

    expected: int | None = None  # replicas as Thermostat left them (None: not known yet)
    changes: int = 0  # external changes since Thermostat's last replica write that held
    last_change_s: float | None = None  # when the last external change was seen
    wrote: bool = False  # Thermostat changed replicas in the last run


@dataclass(frozen=True)
class ReplicaVerdict:
    """This run's reading of the replicas."""

    watch: ReplicaWatch
    external: bool  # the live count differs from the expected one
    overridden: str | None  # the conflict message, while external changes keep coming


def judge_replicas(
    watch: ReplicaWatch, live: int, *, fallback: int | None, now: float, quiet_s: float
) -> ReplicaVerdict:
    """Compare the live count with the expected one (``fallback``, from status, after a restart)."""
    expected = watch.expected if watch.expected is not None else fallback
    external = expected is not None and live != expected
    changes, last = watch.changes, watch.last_change_s
    if external:
        changes, last = changes + 1, now
    elif watch.wrote or (last is not None and now - last >= quiet_s):
        changes = 0  # our write held, or nobody touched the replicas for a while
    overridden = None
    if changes >= OVERRIDE_LIMIT:
        overridden = (
            f"Deployment replicas changed outside Thermostat {changes} times in a row (now {live}); "
            f"replica control resumes after {quiet_s:.0f}s without such a change (a GitOps sync? "
            "make it ignore spec.replicas)"
        )
    watch = ReplicaWatch(expected=live, changes=changes, last_change_s=last, wrote=False)
    return ReplicaVerdict(watch=watch, external=external, overridden=overridden)


def after_write(watch: ReplicaWatch, replicas: int) -> ReplicaWatch:
    """The watch once Thermostat has set ``replicas``."""
    return replace(watch, expected=replicas, wrote=True)
