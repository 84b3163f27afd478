"""The local stack: the whole Thermostat loop on one machine (DESIGN §6), run by ``thermostat up``.

Concepts, one module each:

- :mod:`processes` and :mod:`ports`: child processes in their own process groups, ended for sure;
  loopback ports, with a clear message when one is taken.
- :mod:`kubeapi`: a small asyncio client of the (emulated) Kubernetes API used by the stack's own parts.
- :mod:`nodeagent`: the kubelet stand-in. It runs each runtime Pod as a ``thermostat-runtime serve``
  process per the pod template contract on an address of its own (its ``status.podIP``), marks it
  Ready from ``/readyz`` and drains it on deletion (the Pod stays Terminating meanwhile).
- :mod:`scrape`, :mod:`poddiscovery`, :mod:`promserver`: Prometheus finding the runtime pods through
  the API with the chart's relabelling (Kubernetes discovery, or its list+watch for a binary without it).
- :mod:`scenarios`, :mod:`trace`, :mod:`loaddriver`: offered load (built-in burst and diurnal
  scenarios, or the Azure trace time-compressed) sent open-loop to the ready replicas.
- :mod:`capacity`: requests per second one replica sustains at T = 1 and at T_min.
- :mod:`recorder`, :mod:`live`, :mod:`report`: time series of the run, the live view, and the report.
- :mod:`up`: the orchestration behind ``thermostat up``.
"""
