"""Where the routing temperature comes from: a flag, a file (re-read on change) or a ConfigMap watch.

DESIGN §3: in a cluster the pod watches ONE ConfigMap (``$THERMOSTAT_ROUTING_CONFIGMAP`` in
``$POD_NAMESPACE``, key ``routing_temperature``, a decimal string) through the Kubernetes API with
``fieldSelector=metadata.name=<name>``; outside a cluster ``--routing-temperature T`` or
``--routing-temperature-file F``. Every source writes into one ``RoutingSetting``: the server is not
Ready before the first value arrives; when a later read fails the last value is kept, and while the
ConfigMap watch is down, or the ConfigMap is gone (deleted by hand), ``stale`` is set (exported as
``thermostat_routing_config_stale``) until a value is read again. Values are
clamped into ``[T_min, 1]`` by the engine when applied, never refused.

Tracks (DESIGN §3, staged rollout): a pod whose label ``thermostat.dev/track`` is ``canary`` reads
``canary.routing_temperature`` instead (``routing_temperature`` while that key is absent). The pod
learns its track from the downward API's labels file (``$THERMOSTAT_POD_LABELS_FILE``), re-read
every second because the operator relabels running pods; a change re-applies the ConfigMap's data.

The same ConfigMap carries ``slo_target_seconds``, the SLO target the operator writes: read once at
start (``ConfigMapSource.read_initial``) it becomes one more latency bucket boundary; an edit takes
effect at the next pod start (buckets cannot change under a running histogram), so an SLO edit never
restarts pods.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONFIGMAP_KEY = "routing_temperature"
CANARY_KEY = "canary.routing_temperature"
TRACK_LABEL = "thermostat.dev/track"
STABLE, CANARY = "stable", "canary"


def track_from_labels(text: str) -> str:
    """The track in a downward-API labels file (``key="value"`` lines); stable when absent."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == TRACK_LABEL:
            return CANARY if value.strip().strip('"') == CANARY else STABLE
    return STABLE


def track_value(data: dict[str, str], track: str) -> tuple[str, str] | None:
    """(key, value) a pod of this track applies from the ConfigMap's data; None when it has neither."""
    if track == CANARY and CANARY_KEY in data:
        return CANARY_KEY, str(data[CANARY_KEY])
    return (CONFIGMAP_KEY, str(data[CONFIGMAP_KEY])) if CONFIGMAP_KEY in data else None


class _Poller(ABC):
    """Calls ``read_once`` at start and every ``interval_s`` after, on the event loop, until stopped."""

    interval_s: float
    _task: asyncio.Task[None] | None = None

    @abstractmethod
    def read_once(self) -> None:
        """Read the file once and act on a change."""

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


class TrackFile(_Poller):
    """Polls the downward API's labels file; calls ``on_change`` when the pod's track changes."""

    def __init__(self, path: Path, *, interval_s: float = 1.0) -> None:
        self.path, self.interval_s = path, interval_s
        self.track = STABLE
        self.on_change: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None

    def read_once(self) -> None:
        try:
            track = track_from_labels(self.path.read_text())
        except OSError as error:
            log.warning("cannot read the pod's labels file %s (%s); keeping track %s", self.path, error, self.track)
            return
        if track != self.track:
            log.info("track %s -> %s", self.track, track)
            self.track = track
            for listener in self.on_change:
                listener(track)


SLO_TARGET_KEY = "slo_target_seconds"


def parse_slo_target(text: str, source: str) -> float | None:
    """A positive finite number of seconds, or None (logged: the buckets then lack the target)."""
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0.0:
        log.error("%s from %s must be a positive number of seconds: %r; no SLO bucket", SLO_TARGET_KEY, source, text)
        return None
    return value


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


class FileSource(_Poller):
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
        track: Callable[[], str] = lambda: STABLE,
    ) -> None:
        self.namespace, self.name, self.setting = namespace, name, setting
        self.track = track
        self._data: dict[str, str] | None = None  # the last data read, re-applied when the track changes
        self.retry_s = retry_s
        self.watch_timeout_s = watch_timeout_s
        self._api_client = api_client
        self._stop = threading.Event()
        self._watch: Any = None
        self._slo_target: float | None = None
        self._slo_edit_logged: Any = None
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

    def read_initial(self, timeout_s: float = 10.0) -> float | None:
        """One list before serving: the first routing temperature and the SLO target (None if unknown).

        A failure is logged and answers None: the pod then serves with the contract's buckets alone and
        the watch (started later) brings the temperature as usual.
        """
        try:
            selector = f"metadata.name={self.name}"
            listing = self._client().list_namespaced_config_map(
                self.namespace, field_selector=selector, _request_timeout=timeout_s
            )
        except Exception as error:
            where = f"{self.namespace}/{self.name}"
            log.warning("routing ConfigMap %s not read at start (%s): no SLO bucket", where, error)
            return None
        for item in listing.items:
            self._apply(item)
            text = (item.data or {}).get(SLO_TARGET_KEY)
            if text is not None:
                self._slo_target = parse_slo_target(str(text), f"configmap {self.namespace}/{self.name}")
                return self._slo_target
        where = f"{self.namespace}/{self.name}"
        log.warning("routing ConfigMap %s has no %r at start: no SLO bucket", where, SLO_TARGET_KEY)
        return None

    def _note_slo_edit(self, data: dict[str, Any]) -> None:
        text = data.get(SLO_TARGET_KEY)
        if text is None or self._slo_target is None or str(text).strip() == repr(self._slo_target):
            return
        if text != self._slo_edit_logged:
            self._slo_edit_logged = text
            log.info("%s is now %s (buckets use %s): it takes effect at the next pod start", SLO_TARGET_KEY, text,
                     self._slo_target)  # fmt: skip

    def _apply(self, configmap: Any) -> None:
        self._data = dict(configmap.data or {})
        self._note_slo_edit(self._data)
        self.reapply()

    def reapply(self, _track: str | None = None) -> None:
        """Apply the key of the pod's track from the last data read (a track change calls this)."""
        if self._data is None:
            return
        chosen = track_value(self._data, self.track())
        if chosen is None:
            log.error("ConfigMap %s/%s has no key %r", self.namespace, self.name, CONFIGMAP_KEY)
            return
        key, value = chosen
        if self.setting.update(value, f"configmap {self.namespace}/{self.name} key {key}"):
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
