"""The node agent: the kubelet of the local stack, running runtime Pods as real processes.

It is the emulated API server's Pod runner (``thermostat_apiserver.pods.PodRunner``): the server
calls :meth:`NodeAgent.run` for every Pod it stores and cancels it when the Pod is deleted. For a
Pod whose first container runs ``thermostat-runtime serve`` the agent waits the documented start
delay (standing in for the image pull), starts the process per the pod template contract
(:mod:`podspec`) on an address of the Pod's own (127.0.0.N) at its ``http`` container port, and
reports the Pod Ready with that address as ``status.podIP`` once ``/readyz`` answers 200: Prometheus
discovers it from the Pod object, as in a cluster (the runtime is
not ready before its first read of the routing ConfigMap). At most ``max_replicas`` run at once: two
cores are the frame (DESIGN §6), so a further Pod waits, not Ready, with a message saying why.

A deleted Pod is drained as a kubelet would after its preStop hook, the Pod object kept (Terminating)
meanwhile by the agent's finalizer: its endpoint leaves the pool first, in-flight requests finish,
Prometheus gets two more scrapes (so the runtime's final counters are stored), then SIGTERM, the
grace period, and SIGKILL if needed; then the finalizer goes and the Pod with it. Other Pods are reported Ready
at once, as the emulated server's default runner does. A runtime that exits while its Pod is not
being deleted (a crash, SIGKILL) leaves the endpoint pool at once and is restarted in its Pod
(restartPolicy Always), counted in ``restarts``, and reported Ready again from ``/readyz``.

A Pod that mounts a downward API volume (the operator renders one with ``spec.rollout``: the labels
file that tells the runtime its track) gets it as a directory of its own under ``pods_dir``
(:mod:`downward`), written before the process starts, with the environment's paths into the volume
(``THERMOSTAT_POD_LABELS_FILE``) pointed there; every ``labels_sync_s`` the agent compares the Pod's
labels and annotations as the API holds them now (the server's handle follows them) with the files
and rewrites what changed, as the kubelet does within its sync period when the operator relabels a
canary pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from thermostat_stack.downward import DownwardFiles
from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.podspec import PodContractError, grace_period_s, http_port, is_runtime_pod, runtime_launch
from thermostat_stack.ports import address_free
from thermostat_stack.processes import ChildProcess, ProcessTable

log = logging.getLogger(__name__)

# Seconds a new replica waits before its process starts: the image pull of a GPU node, scaled down
# to this machine (pulling a multi-GB runtime image takes tens of seconds to minutes).
DEFAULT_START_DELAY_S = 10.0
MAX_LOCAL_REPLICAS = 2
READY_POLL_S = 0.5
# A kubelet's first restart backoff is 10 s; short here, so a test sees the whole cycle.
RESTART_BACKOFF_S = 1.0
MAX_RESTART_BACKOFF_S = 30.0
# How often a Pod's downward API files are brought up to date with its labels. The kubelet's sync
# period is a minute by default (plus its cache's TTL); short here, as the runtime re-reads every second.
LABELS_SYNC_S = 0.5


class PodHandleLike(Protocol):
    """What the API server hands its Pod runner (``thermostat_apiserver.pods.PodHandle``)."""

    pod: dict[str, Any]

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    async def set_ready(self, ready: bool = True, *, pod_ip: str | None = None, message: str = "") -> None: ...

    def hold(self, held: bool = True) -> None: ...


@dataclass(frozen=True)
class Target:
    """A scrape target: the runtime's address and its scoping labels."""

    address: str
    labels: dict[str, str]


@dataclass
class LocalPod:
    """A runtime Pod the agent runs: identity, address, process."""

    namespace: str
    name: str
    routedmodel: str
    port: int
    process: ChildProcess
    host: str = "127.0.0.1"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class NodeAgent:
    """Runs runtime Pods as processes; see the module docstring."""

    processes: ProcessTable
    pool: EndpointPool
    kubeconfig: Path
    on_targets: Callable[[list[Target]], None]
    start_delay_s: float = DEFAULT_START_DELAY_S
    max_replicas: int = MAX_LOCAL_REPLICAS
    scrape_interval_s: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    pods_dir: Path | None = None  # the Pods' downward API volumes; None: ``<log dir>/pods``
    labels_sync_s: float = LABELS_SYNC_S
    running: dict[str, LocalPod] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    _slots: set[str] = field(default_factory=set)

    async def run(self, pod: PodHandleLike) -> None:
        """Run one Pod until the server cancels this call (the Pod was deleted)."""
        if not is_runtime_pod(pod.pod):
            await pod.set_ready(True, pod_ip="127.0.0.1")
            await asyncio.Event().wait()
        key = f"{pod.namespace}/{pod.name}"
        files: DownwardFiles | None = None
        sync: asyncio.Task[None] | None = None
        try:
            await self._take_slot(pod, key)
            files = DownwardFiles.for_pod(pod.pod, self._pod_dir(pod))
            files.write(pod.pod)  # before the process starts: it reads its track at once
            if files.volumes:
                sync = asyncio.create_task(self._sync_downward(pod, key, files))
            self._note(f"{key}: pulling the image (start delay {self.start_delay_s:.0f}s)")
            await pod.set_ready(False, message=f"start delay {self.start_delay_s:.0f}s stands in for the image pull")
            await asyncio.sleep(self.start_delay_s)
            local = self._start(pod, key, files)
            pod.hold()  # a deletion now leaves the Pod Terminating until it has drained
            await self._serve(pod, local)
            while True:  # restartPolicy Always: a runtime that dies is restarted in its Pod
                await self._until_exit(local)
                local = await self._restart(pod, key, local, files)
        except PodContractError as error:
            self._note(f"{key}: cannot run: {error}")
            await pod.set_ready(False, message=f"cannot run: {error}")
            await asyncio.Event().wait()
        finally:
            if sync is not None:
                sync.cancel()
            self._slots.discard(key)
            local_pod = self.running.pop(key, None)
            if local_pod is not None:
                # Runs to completion even though this task was cancelled: the Pod is draining.
                await asyncio.shield(self._drain(local_pod, grace_period_s(pod.pod)))
            if files is not None:
                files.remove()
            if local_pod is not None or self.restarts.get(key):
                pod.hold(False)  # held since the first start (deleted mid-restart too)

    def _pod_dir(self, pod: PodHandleLike) -> Path:
        root = self.pods_dir if self.pods_dir is not None else self.processes.log_dir / "pods"
        return root / pod.namespace / pod.name

    async def _sync_downward(self, pod: PodHandleLike, key: str, files: DownwardFiles) -> None:
        """Bring the Pod's downward API files up to date with its labels, every ``labels_sync_s``."""
        while True:
            await asyncio.sleep(self.labels_sync_s)
            for path in files.write(pod.pod):
                self._note(f"{key}: downward API file {path.name} updated")

    async def _take_slot(self, pod: PodHandleLike, key: str) -> None:
        """Wait until fewer than ``max_replicas`` Pods hold a slot (two cores, DESIGN §6)."""
        announced = False
        while len(self._slots) >= self.max_replicas:
            if not announced:
                self._note(f"{key}: waiting: the local node runs at most {self.max_replicas} runtime replicas")
                await pod.set_ready(
                    False,
                    message=f"Unschedulable: the local node runs at most {self.max_replicas} "
                    "runtime replicas (two cores)",
                )
                announced = True
            await asyncio.sleep(1.0)
        self._slots.add(key)

    def _start(self, pod: PodHandleLike, key: str, files: DownwardFiles) -> LocalPod:
        port = http_port(pod.pod)
        host = self._address(port)
        launch = runtime_launch(pod.pod, port=port, host=host, kubeconfig=self.kubeconfig, extra_env=self.extra_env)
        # Paths into a downward API volume (THERMOSTAT_POD_LABELS_FILE) name the Pod's local copy.
        process = self.processes.start(f"runtime-{pod.name}", launch.argv, env=files.env(launch.env))
        local = LocalPod(pod.namespace, pod.name, launch.routedmodel, port, process, host)
        self.running[key] = local
        self._note(f"{key}: started pid {process.pid} on {host}:{port}")
        self.on_targets(self.targets())
        return local

    def _address(self, port: int) -> str:
        """A loopback address of the Pod's own (127.0.0.N) where ``port`` is free: its pod IP."""
        taken = {p.host for p in self.running.values()}
        for n in range(2, 255):
            host = f"127.0.0.{n}"
            if host not in taken and address_free(host, port):
                return host
        raise PodContractError(f"no loopback address has port {port} free")

    async def _serve(self, pod: PodHandleLike, local: LocalPod) -> None:
        """Poll ``/readyz`` until 200, then report the Pod Ready and add its endpoint."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while not await _answers_ready(session, local.url):
                if not local.process.alive():
                    self._note(f"{local.key}: the runtime exited before it was ready:\n{local.process.log_tail(1500)}")
                    await pod.set_ready(False, message=f"runtime exited; log: {local.process.log_path}")
                    return
                await asyncio.sleep(READY_POLL_S)
        await pod.set_ready(True, pod_ip=local.host)  # Prometheus discovers it at podIP:port from here on
        self.pool.add(local.key, local.url)
        self._note(f"{local.key}: ready")

    @staticmethod
    async def _until_exit(local: LocalPod) -> None:
        # A thread blocked in waitpid wakes the moment the process dies: the endpoint leaves the pool
        # before the gateway picks it again (a poll would leave it there for one poll interval).
        await asyncio.to_thread(local.process.popen.wait)

    async def _restart(self, pod: PodHandleLike, key: str, local: LocalPod, files: DownwardFiles) -> LocalPod:
        """The runtime died (a crash, an OOM or SIGKILL): out of the pool at once (its in-flight requests
        failed with it), the Pod not Ready, then the process started again, as a kubelet does."""
        self.pool.remove(local.key)
        self.restarts[key] = self.restarts.get(key, 0) + 1
        self._note(f"{key}: the runtime exited (status {local.process.popen.returncode}); restarting")
        await pod.set_ready(False, message=f"runtime exited (status {local.process.popen.returncode}); restarting")
        self.running.pop(key, None)
        self.on_targets(self.targets())
        # Doubling, as a kubelet's CrashLoopBackOff: a runtime that cannot start is not restarted in a tight loop.
        await asyncio.sleep(min(RESTART_BACKOFF_S * 2 ** (self.restarts[key] - 1), MAX_RESTART_BACKOFF_S))
        restarted = self._start(pod, key, files)
        await self._serve(pod, restarted)
        return restarted

    async def _drain(self, local: LocalPod, grace_s: float) -> None:
        self._note(f"{local.key}: draining")
        endpoint = self.pool.remove(local.key)
        if endpoint is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(endpoint.idle.wait(), timeout=grace_s)
        # Two scrapes after the last reply, so Prometheus holds the runtime's final counters.
        await asyncio.sleep(2 * self.scrape_interval_s + 0.5)
        status = await local.process.stop_async(grace_s=grace_s)
        self.on_targets(self.targets())
        self._note(f"{local.key}: stopped (exit status {status})")

    def targets(self) -> list[Target]:
        """Scrape targets of the runtime processes running now."""
        return [
            Target(f"{p.host}:{p.port}", {"namespace": p.namespace, "pod": p.name, "routedmodel": p.routedmodel})
            for p in self.running.values()
        ]

    def _note(self, text: str) -> None:
        log.info("node agent: %s", text)
        self.events.append((time.time(), text))


async def _answers_ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(f"{url}/readyz") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
