"""The local stack: the whole Thermostat loop on one machine (DESIGN §6), run by ``thermostat up``.

Concepts, one module each:

- :mod:`processes` and :mod:`ports`: child processes in their own process groups, ended for sure;
  loopback ports, with a clear message when one is taken.
- :mod:`kubeapi`: a small asyncio client of the (emulated) Kubernetes API used by the stack's own parts.
- :mod:`nodeagent`: the kubelet stand-in. It runs each runtime Pod as a ``thermostat-runtime serve``
  process per the pod template contract, marks it Ready from ``/readyz``, drains it on deletion and
  publishes Prometheus ``file_sd`` targets with the scoping labels.
- :mod:`scenarios`, :mod:`trace`, :mod:`loaddriver`: offered load (built-in burst and diurnal
  scenarios, or the Azure trace time-compressed) sent open-loop to the ready replicas.
- :mod:`capacity`: requests per second one replica sustains at T = 1 and at T_min.
- :mod:`recorder`, :mod:`live`, :mod:`report`: time series of the run, the live view, and the report.
- :mod:`up`: the orchestration behind ``thermostat up``.
"""
