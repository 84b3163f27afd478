"""The control law: pure decisions from observations (DESIGN §4); no I/O, no Kubernetes, no Kopf.

Public surface: ``decide``, the contract types, the signal kinds (``Reading | Idle | Missing``),
``Profile``/``parse_profile`` (files are loaded by ``thermostat.profiles.load_profile``),
``temperature_bounds`` and ``MEMORY_VERSION``. Modules, by concept: ``evidence`` (the observation
read), ``learning``, ``bounds``, ``budget``, ``replicas``, ``temperature``; ``law`` composes them.
"""

from thermostat.control.bounds import Bounds, temperature_bounds
from thermostat.control.law import BURST_RESERVE, decide
from thermostat.control.memory import MEMORY_VERSION
from thermostat.control.profile import Profile, ProfileError, parse_profile, quality_loss_percent
from thermostat.control.signals import Idle, Missing, Reading, SignalValue
from thermostat.control.types import Decision, Observation, Signal, Verdict

__all__ = [
    "BURST_RESERVE",
    "MEMORY_VERSION",
    "Bounds",
    "Decision",
    "Idle",
    "Missing",
    "Observation",
    "Profile",
    "ProfileError",
    "Reading",
    "Signal",
    "SignalValue",
    "Verdict",
    "decide",
    "parse_profile",
    "quality_loss_percent",
    "temperature_bounds",
]
