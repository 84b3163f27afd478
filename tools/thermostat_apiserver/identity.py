"""Authentication: who sent a request, from its bearer token, as a cluster's token authenticator says.

Two kinds of token: the admin token written into the server's own kubeconfig (user
``thermostat-admin`` in ``system:masters``: the test harness and ``kubectl`` as a cluster admin), and
ServiceAccount tokens issued through the TokenRequest API (``POST .../serviceaccounts/<name>/token``,
what the kubelet does for a pod) — user ``system:serviceaccount:<namespace>:<name>``, valid while that
ServiceAccount exists. An unknown token is a 401. A request with no token at all is the harness's
admin by default (``Tokens(anonymous=ADMIN)``): Go clients (kubectl, Helm) never send a bearer token
over plain HTTP, and this server speaks plain HTTP on loopback. Tests that check who acted read the
identity each request was served as (the audit log), so a client that lost its token shows up there;
``anonymous=ANONYMOUS`` makes the server strict (``system:anonymous``, refused all but /version).

The user of the request being served is in :data:`current_user` (a context variable), so admission
(the RBAC escalation check) sees who writes; the server's own controllers write as ``system:apiserver``.
"""

from __future__ import annotations

import contextvars
import datetime
import secrets
from dataclasses import dataclass

from thermostat_apiserver import errors
from thermostat_apiserver.resources import BUILTIN, ResourceType
from thermostat_apiserver.store import Obj, Store, timestamp

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class User:
    """An authenticated (or anonymous) requester: name and groups, as RBAC subjects match them."""

    name: str
    groups: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups

    @property
    def is_anonymous(self) -> bool:
        return self.name == ANONYMOUS.name


ADMIN = User("thermostat-admin", (MASTERS, AUTHENTICATED))
SYSTEM = User("system:apiserver", (MASTERS, AUTHENTICATED))
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
current_user: contextvars.ContextVar[User] = contextvars.ContextVar("current_user", default=SYSTEM)
_SERVICE_ACCOUNTS = next(rt for rt in BUILTIN if rt.plural == "serviceaccounts")


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


@dataclass(frozen=True)
class _Grant:
    namespace: str
    name: str
    uid: str


class Tokens:
    """The tokens this server accepts."""

    def __init__(self, store: Store, *, anonymous: User | None = None, admin_token: str | None = None) -> None:
        self._store = store
        self.anonymous = anonymous or ADMIN
        # A restarted server may keep its admin token, as a cluster's credentials outlive an API server restart.
        self.admin_token = admin_token or "admin." + secrets.token_urlsafe(24)
        self._granted: dict[str, _Grant] = {}

    def issue(self, namespace: str, name: str) -> str:
        """A token for ServiceAccount ``namespace/name`` (404 when it does not exist)."""
        account = self._store.get(_SERVICE_ACCOUNTS, namespace, name)
        token = f"sa.{namespace}.{name}." + secrets.token_urlsafe(24)
        self._granted[token] = _Grant(namespace, name, account["metadata"]["uid"])
        return token

    def authenticate(self, authorization: str) -> User:
        """The user a request's ``Authorization`` header names; 401 for a token this server never issued."""
        if not authorization:
            return self.anonymous
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise errors.ApiError(401, "Unauthorized", "only bearer tokens are accepted here")
        if secrets.compare_digest(token.strip(), self.admin_token):
            return ADMIN
        grant = self._granted.get(token.strip())
        if grant is None:
            raise errors.ApiError(401, "Unauthorized", "Unauthorized: the bearer token is not one this server issued")
        account = self._store.find(_SERVICE_ACCOUNTS, grant.namespace, grant.name)
        if account is None or account["metadata"]["uid"] != grant.uid:
            raise errors.ApiError(
                401, "Unauthorized", f"Unauthorized: ServiceAccount {grant.namespace}/{grant.name} no longer exists"
            )
        return service_account_user(grant.namespace, grant.name)


def _expiry(seconds: object) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=float(str(seconds)))
    return timestamp(moment)


def token_request(tokens: Tokens, rt: ResourceType, namespace: str, name: str, body: Obj | None) -> Obj:
    """Answer a TokenRequest (``POST .../serviceaccounts/<name>/token``) with a fresh token."""
    if rt.plural != "serviceaccounts":
        raise errors.not_found(f"{rt.plural}/token", name, rt.group)
    spec = dict((body or {}).get("spec") or {})
    spec.setdefault("audiences", ["https://kubernetes.default.svc"])
    spec.setdefault("expirationSeconds", 3600)
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": timestamp()},
        "spec": spec,
        # Tokens here do not expire; the timestamp is what the client is told, as a server would say it.
        "status": {"token": tokens.issue(namespace, name), "expirationTimestamp": _expiry(spec["expirationSeconds"])},
    }
