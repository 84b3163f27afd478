"""``python -m thermostat_runtime`` is ``thermostat-runtime``."""

from thermostat_runtime.cli import main

main()
