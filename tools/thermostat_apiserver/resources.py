"""The kinds the emulated API server serves: built-in ones we use, and those declared by CRDs.

A :class:`ResourceType` carries what discovery, URLs, tables and validation need to know about one
resource of one group-version; built-in kinds come from :data:`BUILTIN`, custom ones from the stored
CustomResourceDefinition objects through :func:`from_crd`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One resource (plural) of one group-version, as discovery advertises it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    singular: str = ""
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    crd_name: str | None = None  # set for custom resources: the CRD whose schema validates them

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def key(self) -> str:
        """Identity of the stored objects: the same objects whatever version is asked for."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def has(self, subresource: str) -> bool:
        return subresource in self.subresources


def _b(group: str, plural: str, kind: str, **kwargs: Any) -> ResourceType:
    version = kwargs.pop("version", "v1")
    singular = kwargs.pop("singular", kind.lower())
    return ResourceType(group, version, plural, kind, singular=singular, **kwargs)


BUILTIN: tuple[ResourceType, ...] = (
    _b("", "namespaces", "Namespace", namespaced=False, short_names=("ns",), subresources=("status",)),
    _b("", "pods", "Pod", short_names=("po",), subresources=("status",), categories=("all",)),
    _b("", "services", "Service", short_names=("svc",), subresources=("status",), categories=("all",)),
    _b("", "configmaps", "ConfigMap", short_names=("cm",)),
    _b("", "secrets", "Secret"),
    _b("", "serviceaccounts", "ServiceAccount", short_names=("sa",), subresources=("token",)),
    _b("", "events", "Event", short_names=("ev",)),
    _b(
        "apps",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        subresources=("status", "scale"),
        categories=("all",),
    ),
    _b("apps", "replicasets", "ReplicaSet", short_names=("rs",), subresources=("status", "scale"), categories=("all",)),
    # Stored only (no controller): the chart installs the operator as one; tests start its pods themselves.
    _b(
        "apps",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        subresources=("status", "scale"),
        categories=("all",),
    ),
    # Stored, listed and watched only (no autoscaling controller): enough for conflict detection.
    _b(
        "autoscaling",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        version="v2",
        short_names=("hpa",),
        subresources=("status",),
        categories=("all",),
    ),
    _b("rbac.authorization.k8s.io", "roles", "Role"),
    _b("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    _b("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", namespaced=False),
    _b("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _b("policy", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",), subresources=("status",)),
    _b("coordination.k8s.io", "leases", "Lease"),
    _b(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        subresources=("status",),
    ),
)


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types of every served version of a CustomResourceDefinition object."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    result = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = tuple(name for name in ("status", "scale") if name in version.get("subresources", {}))
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", [])),
                subresources=subresources,
                categories=tuple(names.get("categories", [])),
                singular=names.get("singular", names["kind"].lower()),
                printer_columns=tuple(version.get("additionalPrinterColumns", [])),
                crd_name=crd["metadata"]["name"],
            )
        )
    return result


def check_crd(crd: dict[str, Any]) -> list[str]:
    """What makes a CRD object unusable (as the server's CRD validation would refuse it)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    problems = [f"spec.{key} is required" for key in ("group", "versions") if not spec.get(key)]
    problems += [f"spec.names.{key} is required" for key in ("plural", "kind") if not names.get(key)]
    if not problems and crd.get("metadata", {}).get("name") != f"{names['plural']}.{spec['group']}":
        problems.append(f"metadata.name must be spec.names.plural+'.'+spec.group: {names['plural']}.{spec['group']}")
    return problems


CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


class Registry:
    """The resource types served now: the built-in ones and those of the CRDs stored so far."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in BUILTIN:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def set_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Serve (or re-serve, after an update) the versions of one CRD."""
        self.drop_crd(crd["metadata"]["name"])
        types = from_crd(crd)
        for rt in types:
            self.add(rt)
        return types

    def drop_crd(self, crd_name: str) -> None:
        for key, rt in list(self._types.items()):
            if rt.crd_name == crd_name:
                del self._types[key]

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def require(self, group: str, version: str, plural: str) -> ResourceType:
        """The served type, or a LookupError naming what is served in that group-version."""
        rt = self.find(group, version, plural)
        if rt is None:
            served = [t.plural for t in self.all() if (t.group, t.version) == (group, version)]
            raise LookupError(f"{plural!r} is not served in {group or 'core'}/{version}; served: {served}")
        return rt

    def all(self) -> list[ResourceType]:
        return sorted(self._types.values(), key=lambda rt: (rt.group, rt.version, rt.plural))

    def by_key(self, key: str) -> ResourceType | None:
        return next((rt for rt in self._types.values() if rt.key == key), None)

    def group_versions(self) -> dict[str, list[str]]:
        """Versions of each group, the preferred (first declared) first; core is ''."""
        result: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return result
