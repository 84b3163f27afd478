"""URL parsing: which resource, namespace, name and subresource a request path addresses.

kmock's own parser cannot read ``/api/v1/namespaces`` (the core group's namespace objects), so the
emulated server parses Kubernetes paths here and hands kmock a complete request.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """A parsed API path; ``plural`` is None for discovery paths."""

    group: str | None = None  # None: not under /api or /apis
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def _resource_part(group: str, version: str, rest: list[str]) -> Route:
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[:1] == ["namespaces"]:  # the namespace objects themselves: /api/v1/namespaces[/name[/sub]]
        return Route(group, version, "namespaces", None, rest[1] if len(rest) > 1 else None)
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return Route(group, version, plural, namespace, name, subresource)


def parse_path(path: str) -> Route:
    """Split ``/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>/<sub>`` and its shorter forms."""
    parts = [part for part in path.strip("/").split("/") if part]
    if parts[:1] == ["api"]:
        group, rest = "", parts[1:]
    elif parts[:1] == ["apis"]:
        if len(parts) < 2:
            return Route()
        group, rest = parts[1], parts[2:]
    else:
        return Route()
    if not rest:
        return Route(group)
    version, rest = rest[0], rest[1:]
    if not rest:
        return Route(group, version)
    if len(rest) == 3 and rest[0] == "namespaces" and rest[2] in ("status", "finalize"):
        return Route(group, version, "namespaces", None, rest[1], rest[2])
    return _resource_part(group, version, rest)
