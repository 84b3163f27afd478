"""Where the routing temperature comes from: a flag, a file (re-read on change) or a ConfigMap watch.

DESIGN §3: in a cluster the pod watches ONE ConfigMap (``$THERMOSTAT_ROUTING_CONFIGMAP`` in
``$POD_NAMESPACE``, key ``routing_temperature``, a decimal string) through the Kubernetes API with
``fieldSelector=metadata.name=<name>``; outside a cluster ``--routing-temperature T`` or
``--routing-temperature-file F``. Every source writes into one ``RoutingSetting``: the server is not
Ready before the first value arrives; when a later read fails the last value is kept, and while the
ConfigMap watch is down, or the ConfigMap is gone (deleted by hand), ``stale`` is set (exported as
``thermostat_routing_config_stale``) until a value is read again. Values are
clamped into ``[T_min, 1]`` by the engine when applied, never refused.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONFIGMAP_KEY = "routing_temperature"


class RoutingSetting:
    """The current routing temperature (None before the first read) and whether its source is stale."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.stale = False
        self.source = "none"
        self.on_change: list[Callable[[float], None]] = []
        self.on_stale: list[Callable[[bool], None]] = []

    @property
    def ready(self) -> bool:
        return self.value is not None

    def current(self) -> float:
        """The value to apply (exact until the first read; the server is not Ready meanwhile)."""
        return 1.0 if self.value is None else self.value

    def update(self, text: str, source: str) -> bool:
        """Parse a decimal string and store it; a bad value is logged and the last one kept."""
        try:
            value = float(text.strip())
        except ValueError:
            log.error("routing_temperature from %s is not a number: %r; keeping %s", source, text, self.value)
            return False
        if not math.isfinite(value) or value <= 0.0:
            log.error(
                "routing_temperature from %s must be a number in (0, 1]: %r; keeping %s", source, text, self.value
            )
            return False
        if value != self.value:
            log.info("routing_temperature %s -> %s (from %s)", self.value, value, source)
        self.value, self.source = value, source
        for listener in self.on_change:
            listener(value)
        return True

    def set_stale(self, stale: bool) -> None:
        self.stale = stale
        for listener in self.on_stale:
            listener(stale)


class FileSource:
    """Polls a file's modification time and content; a change applies without a restart."""

    def __init__(self, path: Path, setting: RoutingSetting, *, interval_s: float = 0.25) -> None:
        self.path = path
        self.setting = setting
        self.interval_s = interval_s
        self._last: tuple[float, str] | None = None
        self._task: asyncio.Task[None] | None = None

    def read_once(self) -> None:
        try:
            stat = self.path.stat()
            if self._last is not None and self._last[0] == stat.st_mtime:
                return
            text = self.path.read_text()
        except OSError as error:
            if self._last is not None or not self.setting.ready:
                log.error("cannot read routing temperature file %s: %s", self.path, error)
            self._last = None
            return
        if self._last is None or self._last[1] != text:
            self.setting.update(text, f"file {self.path}")
        self._last = (stat.st_mtime, text)

    async def start(self) -> None:
        self.read_once()
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.read_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ConfigMapSource:
    """Watches one ConfigMap by name in a daemon thread (the kubernetes client is synchronous)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        setting: RoutingSetting,
        *,
        api_client: Any = None,
        retry_s: float = 1.0,
        watch_timeout_s: int = 60,
    ) -> None:
        self.namespace, self.name, self.setting = namespace, name, setting
        self.retry_s = retry_s
        self.watch_timeout_s = watch_timeout_s
        self._api_client = api_client
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name="routing-configmap-watch", daemon=True)

    async def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _client(self) -> Any:
        from kubernetes import client, config

        if self._api_client is None:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            self._api_client = client.ApiClient()
        return client.CoreV1Api(self._api_client)

    def _apply(self, configmap: Any) -> None:
        data = configmap.data or {}
        if CONFIGMAP_KEY not in data:
            log.error("ConfigMap %s/%s has no key %r", self.namespace, self.name, CONFIGMAP_KEY)
            return
        if self.setting.update(str(data[CONFIGMAP_KEY]), f"configmap {self.namespace}/{self.name}"):
            self.setting.set_stale(False)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except Exception as error:
                if self._stop.is_set():
                    return
                if getattr(error, "status", None) == 410:  # resourceVersion too old: re-list at once
                    continue
                log.warning("routing ConfigMap watch down (%s); retrying in %ss", error, self.retry_s)
                self.setting.set_stale(True)
                self._stop.wait(self.retry_s)

    def _list_and_watch(self) -> None:
        from kubernetes import watch

        api = self._client()
        selector = f"metadata.name={self.name}"
        listing = api.list_namespaced_config_map(self.namespace, field_selector=selector)
        for item in listing.items:
            self._apply(item)
        if not listing.items:
            log.error("ConfigMap %s/%s not found; waiting for it", self.namespace, self.name)
        # No ConfigMap is as stale as no watch: the value in force is the last one read, if any.
        self.setting.set_stale(not listing.items)
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        for event in self._watch.stream(
            api.list_namespaced_config_map,
            self.namespace,
            field_selector=selector,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=self.watch_timeout_s,
            # A connection that dies silently would otherwise block the watch forever.
            _request_timeout=self.watch_timeout_s + 10,
        ):
            if self._stop.is_set():
                return
            if event["type"] in ("ADDED", "MODIFIED"):
                self._apply(event["object"])
            elif event["type"] == "DELETED":
                log.error("ConfigMap %s/%s deleted; keeping %s", self.namespace, self.name, self.setting.value)
                self.setting.set_stale(True)
