"""The control law: pure decisions from observations (DESIGN §4); no I/O, no Kubernetes, no Kopf.

Public surface: ``decide``, the contract types, ``Profile``/``parse_profile`` (files are loaded by
``thermostat.profiles.load_profile``), and ``MEMORY_VERSION``.
"""

from thermostat.control.law import BURST_RESERVE, decide, temperature_bounds
from thermostat.control.memory import MEMORY_VERSION
from thermostat.control.profile import Profile, ProfileError, parse_profile
from thermostat.control.types import Decision, Observation, Signal, Verdict

__all__ = [
    "BURST_RESERVE",
    "MEMORY_VERSION",
    "Decision",
    "Observation",
    "Profile",
    "ProfileError",
    "Signal",
    "Verdict",
    "decide",
    "parse_profile",
    "temperature_bounds",
]
