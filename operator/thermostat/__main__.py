"""``python -m thermostat`` is ``thermostat``."""

from thermostat.cli import main

main()
