"""Detect a controller that keeps resetting the replicas Thermostat set (a GitOps sync, an old script).

One reset is a person's ``kubectl scale`` (adopted, see docs/operator.md); the same undo twice in a
row is a fight: the RoutedModel gets ``Conflict=True`` (reason ``ReplicasOverridden``) and the
operator stops changing replicas until the spec's generation changes (someone fixed the cause and
edited the RoutedModel) or the operator restarts. Pure: the caller feeds each run's facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OVERRIDE_LIMIT = 2


@dataclass
class OverrideTracker:
    """Consecutive undone replica changes, per RoutedModel, for its current spec generation."""

    limit: int = OVERRIDE_LIMIT
    _counts: dict[tuple[str, str], tuple[int, int | None]] = field(default_factory=dict)

    def observe(
        self, key: tuple[str, str], *, generation: int | None, ours: int | None, previous: int | None, live: int
    ) -> str | None:
        """Record one run; returns the conflict message once the limit of undos is reached.

        ``ours`` is the replica count Thermostat last applied, ``previous`` the count status says was in
        force after the last run, ``live`` the Deployment's count now.
        """
        count, seen_generation = self._counts.get(key, (0, generation))
        if seen_generation != generation:
            count = 0
        if previous is not None and live != previous and ours == previous:
            count += 1
        self._counts[key] = (count, generation)
        if count < self.limit:
            return None
        return (
            f"Deployment replicas were reset to {live} {count} times after Thermostat set them "
            "(a GitOps sync? ignore spec.replicas there, then edit this RoutedModel to clear)"
        )

    def forget(self, key: tuple[str, str]) -> None:
        self._counts.pop(key, None)
