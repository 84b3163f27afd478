"""The control law: pure decisions from observations (DESIGN §4); no I/O, no Kubernetes, no Kopf."""
