"""The operator's API permissions: one declared table, from which the chart's RBAC rules are generated.

Every function of :mod:`thermostat.kube` that calls the API carries :func:`requires` with the
``(group, resource, subresource, verbs, scope)`` it uses; Kopf's own calls (watching RoutedModels,
its progress annotations, its Events, resource discovery) are declared in :data:`FRAMEWORK`. The
table is the whole truth: ``thermostat rbac`` turns it into ``charts/thermostat/files/operator-rules.yaml``
(a freshness test keeps the committed copy equal), a unit test fails when a kube function lacks a
declaration, and the integration suite fails when the operator sends a request outside the table or
when an entry is never used.

Scope ``namespace`` means "in each watched namespace" (a ClusterRole when the operator watches the
whole cluster, a Role per namespace otherwise); ``cluster`` is a cluster-scoped resource (always a
ClusterRole). A ``delegated`` entry is held so that the operator may grant it onward: Kubernetes
refuses a Role that grants more than its creator holds (the RBAC escalation check), and the runtime
pods' Role reads their routing ConfigMap (list, watch). Holding those verbs on ConfigMaps is far
less than the alternative, the ``escalate`` and ``bind`` verbs, which would let the operator grant
itself anything in the namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from thermostat.api.resource import GROUP, PLURAL

Scope = Literal["namespace", "cluster"]
F = TypeVar("F", bound=Callable[..., object])
ATTRIBUTE = "__thermostat_permissions__"
RULES_FILE = "charts/thermostat/files/operator-rules.yaml"
REGENERATE_COMMAND = f"thermostat rbac > {RULES_FILE}"


@dataclass(frozen=True)
class Permission:
    """What one API use needs: verbs on ``group``/``resource`` (or its subresource), and why."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    subresource: str = ""
    scope: Scope = "namespace"
    delegated: bool = False

    @property
    def rbac_resource(self) -> str:
        """The name RBAC rules use: ``deployments/scale`` for a subresource."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


# kind -> (group, plural): the kinds a RoutedModel owns, which kube.Kube reads, creates and patches.
OWNED_RESOURCES: dict[str, tuple[str, str]] = {
    "ServiceAccount": ("", "serviceaccounts"),
    "ConfigMap": ("", "configmaps"),
    "Service": ("", "services"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "Deployment": ("apps", "deployments"),
}


def on_owned(verbs: tuple[str, ...], why: str) -> tuple[Permission, ...]:
    """The same verbs on every owned kind (the generic read/patch/apply of :class:`kube.Kube`)."""
    return tuple(Permission(group, plural, verbs, why) for group, plural in OWNED_RESOURCES.values())


def requires(*permissions: Permission) -> Callable[[F], F]:
    """Declare the permissions a kube function uses; they join the table the chart is generated from."""

    def mark(function: F) -> F:
        setattr(function, ATTRIBUTE, (*getattr(function, ATTRIBUTE, ()), *permissions))
        return function

    return mark


def declared(function: object) -> tuple[Permission, ...]:
    """The permissions ``function`` declared with :func:`requires` (empty when it declared none)."""
    found: tuple[Permission, ...] = getattr(function, ATTRIBUTE, ())
    return found


# Kopf's own requests: not made through kube/, declared here so the chart grants them too.
FRAMEWORK: tuple[Permission, ...] = (
    Permission(GROUP, PLURAL, ("list", "watch"), "Kopf watches RoutedModels"),
    Permission(GROUP, PLURAL, ("patch",), "Kopf stores handler progress and the last-handled spec in annotations"),
    Permission("", "events", ("create",), "Kopf posts Events on handler failures"),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        "Kopf notices the RoutedModel CRD being installed, upgraded or removed",
        scope="cluster",
    ),
    Permission(
        "kopf.dev",
        "clusterkopfpeerings",
        ("list", "watch", "patch"),
        "Kopf peering (several replicas, one active): each replica watches the peering object and "
        "writes its heartbeat there",
        scope="cluster",
    ),
)

# Held only to be granted onward to the runtime pods' Role (see the module docstring).
DELEGATED: tuple[Permission, ...] = (
    Permission(
        "",
        "configmaps",
        ("list", "watch"),
        "granted onward: the runtime pods' Role reads their routing ConfigMap",
        delegated=True,
    ),
)


def rules(permissions: Iterable[Permission], scope: Scope) -> list[dict[str, list[str]]]:
    """RBAC rules for the entries of one scope: one rule per resource, verbs merged and sorted."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for permission in permissions:
        if permission.scope == scope:
            verbs.setdefault((permission.group, permission.rbac_resource), set()).update(permission.verbs)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs[(group, resource)])}
        for group, resource in sorted(verbs)
    ]
