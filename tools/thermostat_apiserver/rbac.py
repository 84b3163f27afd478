"""RBAC authorization over the stored Roles, ClusterRoles and their bindings, as Kubernetes decides it.

A request's attributes (verb, API group, resource, subresource, namespace, name) are allowed when a
rule bound to the user allows them: ClusterRoleBindings grant everywhere, RoleBindings in their own
namespace (to a Role there or a ClusterRole). ``resourceNames`` restricts by name, and a list or
watch with ``fieldSelector=metadata.name=<n>`` counts as a request for ``<n>``, as the real server
reads it. Discovery (``/api``, ``/apis``, ``/openapi``, ``/version``) is open to any authenticated
user, ``/version`` and health paths to anyone. ``system:masters`` may do everything.

Writes of RBAC objects pass the escalation check (:class:`EscalationCheck`, an admission step): a
Role may grant only what its writer holds in that namespace, unless the writer may ``escalate`` it;
a binding only a role whose rules the writer holds, unless the writer may ``bind`` it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from thermostat_apiserver import errors
from thermostat_apiserver.identity import User, current_user
from thermostat_apiserver.resources import BUILTIN, ResourceType
from thermostat_apiserver.routing import Route
from thermostat_apiserver.store import Obj, Store

RBAC_GROUP = "rbac.authorization.k8s.io"
_TYPES = {rt.plural: rt for rt in BUILTIN if rt.group == RBAC_GROUP}
PUBLIC_PATHS = ("/version", "/healthz", "/readyz", "/livez")
DISCOVERY_PREFIXES = ("/api", "/apis", "/openapi", "/version")


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, in RBAC's terms."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_verb(route: Route, method: str, query: dict[str, str]) -> str:
    """The RBAC verb of a request: get, list, watch, create, update, patch, delete, deletecollection."""
    if method == "GET":
        if query.get("watch", "").lower() in ("true", "1"):
            return "watch"
        return "get" if route.name else "list"
    if method == "DELETE":
        return "delete" if route.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def attributes(route: Route, method: str, query: dict[str, str]) -> Attributes:
    """The attributes of a resource request (``route.plural`` set)."""
    verb = request_verb(route, method, query)
    name = route.name or ""
    if not name and verb in ("list", "watch"):
        for term in (query.get("fieldSelector") or "").split(","):
            key, _, value = term.partition("=")
            if key.strip() == "metadata.name" and value and not key.endswith("!"):
                name = value.lstrip("=").strip()
    return Attributes(verb, route.group or "", route.plural or "", route.subresource or "", route.namespace or "", name)


def _matches(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    """Whether one PolicyRule allows ``attrs`` (an empty ``attrs.name`` needs a rule without resourceNames)."""
    if not _matches(rule.get("verbs") or [], attrs.verb) or not _matches(rule.get("apiGroups") or [], attrs.group):
        return False
    resources = rule.get("resources") or []
    if not (_matches(resources, attrs.combined) or (attrs.subresource and f"*/{attrs.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(attrs.name) and attrs.name in names)


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


class Authorizer:
    """Decides requests from the RBAC objects stored now."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _role_rules(self, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            role = self._store.find(_TYPES["clusterroles"], "", ref.get("name", ""))
        else:
            role = self._store.find(_TYPES["roles"], namespace, ref.get("name", ""))
        return list((role or {}).get("rules") or [])

    def rules(self, user: User, namespace: str) -> Iterator[dict[str, Any]]:
        """Every rule granted to ``user`` in ``namespace`` ('' : cluster-wide grants only)."""
        for binding in self._store.objects(_TYPES["clusterrolebindings"]):
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                yield from self._role_rules(binding.get("roleRef") or {}, "")
        if namespace:
            for binding in self._store.objects(_TYPES["rolebindings"], namespace):
                if any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
                    yield from self._role_rules(binding.get("roleRef") or {}, namespace)

    def allows(self, user: User, attrs: Attributes) -> bool:
        if user.is_admin:
            return True
        return any(rule_allows(rule, attrs) for rule in self.rules(user, attrs.namespace))

    def check(self, user: User, attrs: Attributes) -> None:
        """Raise 403 Forbidden, worded as the real server words it, unless ``attrs`` is allowed."""
        if self.allows(user, attrs):
            return
        what = f"resource {attrs.combined!r}".replace("'", '"')
        where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
        name = f'"{attrs.name}" ' if attrs.name else ""
        raise errors.ApiError(
            403,
            "Forbidden",
            f'{attrs.combined} {name}is forbidden: User "{user.name}" cannot {attrs.verb} {what} '
            f'in API group "{attrs.group}"{where}',
            details={"name": attrs.name, "group": attrs.group, "kind": attrs.resource},
        )

    def uncovered(self, user: User, namespace: str, rules: list[dict[str, Any]]) -> list[str]:
        """The grants in ``rules`` that ``user`` does not hold in ``namespace``, as readable strings."""
        held = list(self.rules(user, namespace))
        missing = []
        for attrs in _atoms(rules, namespace):
            if not any(rule_allows(rule, attrs) for rule in held):
                named = f" {attrs.name}" if attrs.name else ""
                missing.append(f"{attrs.verb} {attrs.group or 'core'}/{attrs.combined}{named}")
        return missing


def _atoms(rules: list[dict[str, Any]], namespace: str) -> Iterator[Attributes]:
    """Each single (verb, group, resource, name) a list of rules grants."""
    for rule in rules:
        for group in rule.get("apiGroups") or [""]:
            for resource in rule.get("resources") or []:
                base, _, sub = resource.partition("/")
                for verb in rule.get("verbs") or []:
                    for name in rule.get("resourceNames") or [""]:
                        yield Attributes(verb, group, base, sub, namespace, name)


class EscalationCheck:
    """Admission for Roles, ClusterRoles and bindings: no one grants what they do not hold."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    def __call__(self, rt: ResourceType, old: Obj | None, new: Obj, strict: bool) -> Obj:
        user = current_user.get()
        if rt.group != RBAC_GROUP or user.is_admin:
            return new
        meta = new.get("metadata") or {}
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        if rt.plural in ("roles", "clusterroles"):
            self._check_role(user, rt, namespace, meta.get("name", ""), new.get("rules") or [])
        else:
            self._check_binding(user, rt, namespace, meta.get("name", ""), new.get("roleRef") or {})
        return new

    def _check_role(self, user: User, rt: ResourceType, namespace: str, name: str, rules: list[Any]) -> None:
        escalate = Attributes("escalate", RBAC_GROUP, rt.plural, namespace=namespace, name=name)
        missing = self._authorizer.uncovered(user, namespace, rules)
        if missing and not self._authorizer.allows(user, escalate):
            raise errors.ApiError(
                403,
                "Forbidden",
                f'{rt.plural}.{RBAC_GROUP} "{name}" is forbidden: user "{user.name}" is attempting to grant RBAC '
                f"permissions not currently held: {'; '.join(missing)}",
            )

    def _check_binding(self, user: User, rt: ResourceType, namespace: str, name: str, ref: dict[str, Any]) -> None:
        role_type = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        bind = Attributes("bind", RBAC_GROUP, role_type, namespace=namespace, name=ref.get("name", ""))
        if self._authorizer.allows(user, bind):
            return
        rules = self._authorizer._role_rules(ref, namespace)
        missing = self._authorizer.uncovered(user, namespace, rules) if rules else ["the role does not exist"]
        if missing:
            raise errors.ApiError(
                403,
                "Forbidden",
                f'{rt.plural}.{RBAC_GROUP} "{name}" is forbidden: user "{user.name}" may not bind '
                f"{ref.get('kind')} {ref.get('name')}: {'; '.join(missing)}",
            )


def non_resource_allowed(user: User, path: str) -> bool:
    """Discovery for the authenticated, version and health for everyone (system:public-info-viewer)."""
    if path in PUBLIC_PATHS or user.is_admin:
        return True
    return not user.is_anonymous and path.startswith(DISCOVERY_PREFIXES)
