"""The downward API volumes of a Pod, projected by the node agent as the kubelet projects them.

A Pod's template may mount a ``downwardAPI`` volume (the operator renders one with ``spec.rollout``:
``metadata.labels`` at ``/etc/thermostat/podinfo/labels``, read by the runtime through
``$THERMOSTAT_POD_LABELS_FILE`` to learn its track). On this machine there is no such mount: each
volume becomes a directory of the Pod's own (``<pod dir>/<volume name>``), its items files there in
the kubelet's format (a map field is ``key="value"`` lines, sorted by key, the value quoted as Go's
``%q`` does), and every environment value that names a path under the volume's ``mountPath`` is
pointed at the local directory instead. :meth:`DownwardFiles.write` rewrites a file only when its
content changed, by an atomic rename (a reader never sees half a file), as the kubelet does when a
Pod's labels change in the API within its sync period.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thermostat_stack.podspec import PodContractError


def format_map(values: Mapping[str, str]) -> str:
    """A map as the kubelet writes it into a downward API file: ``key="value"`` lines, sorted by key."""
    return "\n".join(f"{key}={json.dumps(str(values[key]), ensure_ascii=False)}" for key in sorted(values))


def field_content(pod: dict[str, Any], field_path: str) -> str:
    """The content of a downward API file for ``field_path`` (:class:`PodContractError` if unsupported)."""
    metadata = pod.get("metadata") or {}
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(metadata.get(field_path.split(".", 1)[1]) or {})
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        default = "default" if field_path == "metadata.namespace" else ""
        return str(metadata.get(field_path.split(".", 1)[1], default))
    raise PodContractError(f"downwardAPI fieldRef {field_path!r} is not supported by the local node agent")


@dataclass(frozen=True)
class DownwardVolume:
    """One mounted downward API volume: where the container sees it, and its files' fields."""

    name: str
    mount_path: str
    items: tuple[tuple[str, str], ...]  # (path inside the volume, fieldRef fieldPath)


def downward_volumes(pod: dict[str, Any]) -> list[DownwardVolume]:
    """The first container's mounts of ``downwardAPI`` volumes (:class:`PodContractError` on a bad item)."""
    spec = pod.get("spec") or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or [] if "downwardAPI" in v}
    container = (spec.get("containers") or [{}])[0]
    mounted: list[DownwardVolume] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        if volume is None:
            continue
        items: list[tuple[str, str]] = []
        for item in volume["downwardAPI"].get("items") or []:
            path = str(item.get("path", ""))
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise PodContractError(f"downwardAPI volume {volume['name']}: item path {path!r} is not relative")
            if "fieldRef" not in item:
                raise PodContractError(f"downwardAPI volume {volume['name']}: only fieldRef items are supported here")
            field_path = str(item["fieldRef"]["fieldPath"])
            field_content(pod, field_path)  # refuse an unsupported field before anything starts
            items.append((path, field_path))
        mounted.append(DownwardVolume(str(volume["name"]), str(mount["mountPath"]).rstrip("/"), tuple(items)))
    return mounted


@dataclass
class DownwardFiles:
    """A Pod's downward API volumes as local directories under ``root``; see the module docstring."""

    root: Path
    volumes: list[DownwardVolume]
    written: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def for_pod(cls, pod: dict[str, Any], root: Path) -> DownwardFiles:
        return cls(root, downward_volumes(pod))

    def local_path(self, path: str) -> str | None:
        """Where a container path under a volume's mount path lies on this machine (None: not under one)."""
        normalized = posixpath.normpath(path)
        for volume in self.volumes:
            if normalized == volume.mount_path or normalized.startswith(volume.mount_path + "/"):
                rest = normalized[len(volume.mount_path) :].lstrip("/")
                return str(self.root / volume.name / rest) if rest else str(self.root / volume.name)
        return None

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with every value naming a path under a mounted volume pointed at its local directory."""
        return {name: self.local_path(value) or value for name, value in env.items()}

    def write(self, pod: dict[str, Any]) -> list[Path]:
        """Write the files whose content changed for ``pod`` (atomically); returns those written."""
        changed: list[Path] = []
        for volume in self.volumes:
            for path, field_path in volume.items:
                target = self.root / volume.name / path
                content = field_content(pod, field_path)
                if self.written.get(target) == content:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                staging = target.with_name(f".{target.name}.tmp")
                staging.write_text(content, encoding="utf-8")
                os.replace(staging, target)
                self.written[target] = content
                changed.append(target)
        return changed

    def remove(self) -> None:
        """Remove the Pod's volume directories (the kubelet tears the volumes down with the Pod)."""
        shutil.rmtree(self.root, ignore_errors=True)
