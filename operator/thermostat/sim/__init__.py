"""Trace-driven simulator of a RoutedModel under a controller (DESIGN §7): benchmark and what-if tool.

``run_all``/``simulate`` replay a trace through batching replicas whose ground truth comes from a
routing profile, with cold starts, a Prometheus-like metrics pipeline, admission control and an
H100-like power model, under ``thermostat`` (the real control law) or a baseline.
"""
