"""Thermostat runtime: the routed model and its OpenAI-compatible server, run in every inference pod.

This package never imports the operator (``thermostat``), and importing it does not import torch:
the profile's JSON Schema (``schemas/profile.schema.json``) is readable without the model stack.
"""

__version__ = "0.1.0"
