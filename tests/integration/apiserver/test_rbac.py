"""Authentication and RBAC in the emulated API server: a missing permission is a 403, as in a cluster.

ServiceAccount tokens come from the TokenRequest API; Roles, ClusterRoles and bindings decide each
request, ``resourceNames`` included (a watch by ``metadata.name`` counts as that name); writing a Role
or binding passes the escalation check; every request is logged with the identity it was served as.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from thermostat_apiserver import ApiServer
from thermostat_apiserver.identity import ANONYMOUS

pytestmark = pytest.mark.integration
RBAC = "/apis/rbac.authorization.k8s.io/v1"


class Client:
    """Raw requests as one identity (a bearer token, or none)."""

    def __init__(self, api: ApiServer, session: aiohttp.ClientSession, token: str | None) -> None:
        self.api, self.session, self.token = api, session, token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(method, self.api.url + path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as value:
        yield value


@pytest.fixture
async def admin(api: ApiServer, session: aiohttp.ClientSession) -> Client:
    client = Client(api, session, api.tokens.admin_token)
    for path, body in [
        ("/api/v1/namespaces", {"metadata": {"name": "ns"}}),
        ("/api/v1/namespaces/ns/serviceaccounts", {"metadata": {"name": "reader"}}),
        ("/api/v1/namespaces/ns/configmaps", {"metadata": {"name": "mine"}, "data": {"k": "v"}}),
        ("/api/v1/namespaces/ns/configmaps", {"metadata": {"name": "other"}, "data": {"k": "v"}}),
    ]:
        assert (await client.call("POST", path, body))[0] == 201
    return client


async def token_for(admin: Client, name: str, namespace: str = "ns") -> str:
    code, body = await admin.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", {"spec": {}})
    assert code == 201, body
    assert body["kind"] == "TokenRequest"
    return str(body["status"]["token"])


def role(name: str, rules: list[dict[str, Any]], namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "rules": rules}


def binding(name: str, role_name: str, account: str, *, kind: str = "Role") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "ns"}],
    }


async def grant(admin: Client, account: str, rules: list[dict[str, Any]]) -> None:
    assert (await admin.call("POST", f"{RBAC}/namespaces/ns/roles", role(account, rules)))[0] == 201
    assert (await admin.call("POST", f"{RBAC}/namespaces/ns/rolebindings", binding(account, account, account)))[
        0
    ] == 201


async def test_resource_names_limit_a_service_account_to_its_one_configmap(
    api: ApiServer, admin: Client, session: aiohttp.ClientSession
) -> None:
    rules = [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"], "verbs": ["get", "list", "watch"]}
    ]
    await grant(admin, "reader", rules)
    reader = Client(api, session, await token_for(admin, "reader"))
    assert (await reader.call("GET", "/api/v1/namespaces/ns/configmaps/mine"))[0] == 200
    code, body = await reader.call("GET", "/api/v1/namespaces/ns/configmaps/other")
    assert code == 403
    assert 'User "system:serviceaccount:ns:reader" cannot get resource "configmaps"' in body["message"]
    assert (await reader.call("GET", "/api/v1/namespaces/ns/configmaps"))[0] == 403  # a list of all: no
    by_name = "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name%3Dmine"
    assert (await reader.call("GET", by_name))[0] == 200
    assert (await reader.call("PATCH", "/api/v1/namespaces/ns/configmaps/mine", {"data": {"k": "w"}}))[0] == 403
    assert (await reader.call("GET", "/api/v1/namespaces/default/configmaps/mine"))[0] == 403
    served = [(e["user"], e["path"], e["code"]) for e in api.audit if e["user"] == "system:serviceaccount:ns:reader"]
    assert ("system:serviceaccount:ns:reader", "/api/v1/namespaces/ns/configmaps/other", 403) in served


async def test_unknown_and_revoked_tokens_are_refused(
    api: ApiServer, admin: Client, session: aiohttp.ClientSession
) -> None:
    assert (await Client(api, session, "made-up").call("GET", "/api/v1/namespaces"))[0] == 401
    token = await token_for(admin, "reader")
    assert (await admin.call("DELETE", "/api/v1/namespaces/ns/serviceaccounts/reader"))[0] == 200
    code, body = await Client(api, session, token).call("GET", "/api")
    assert code == 401
    assert "no longer exists" in body["message"]


async def test_cluster_role_binding_grants_everywhere_a_role_binding_only_in_its_namespace(
    api: ApiServer, admin: Client, session: aiohttp.ClientSession
) -> None:
    pods = {
        "metadata": {"name": "pod-lister"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    }
    assert (await admin.call("POST", f"{RBAC}/clusterroles", pods))[0] == 201
    ns_binding = binding("pods", "pod-lister", "reader", kind="ClusterRole")
    assert (await admin.call("POST", f"{RBAC}/namespaces/ns/rolebindings", ns_binding))[0] == 201
    reader = Client(api, session, await token_for(admin, "reader"))
    assert (await reader.call("GET", "/api/v1/namespaces/ns/pods"))[0] == 200
    assert (await reader.call("GET", "/api/v1/namespaces/default/pods"))[0] == 403
    assert (await reader.call("GET", "/api/v1/pods"))[0] == 403
    assert (
        await admin.call(
            "POST", f"{RBAC}/clusterrolebindings", binding("all", "pod-lister", "reader", kind="ClusterRole")
        )
    )[0] == 201
    assert (await reader.call("GET", "/api/v1/pods"))[0] == 200
    assert (await reader.call("GET", "/apis"))[0] == 200  # discovery: any authenticated user


async def test_a_role_may_grant_only_what_its_writer_holds_unless_it_may_escalate(
    api: ApiServer, admin: Client, session: aiohttp.ClientSession
) -> None:
    writer_rules = [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    ]
    await grant(admin, "reader", writer_rules)
    writer = Client(api, session, await token_for(admin, "reader"))
    held = [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"], "verbs": ["get"]}]
    assert (await writer.call("POST", f"{RBAC}/namespaces/ns/roles", role("held", held)))[0] == 201
    more = [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"], "verbs": ["get", "watch"]}]
    code, body = await writer.call("POST", f"{RBAC}/namespaces/ns/roles", role("more", more))
    assert code == 403
    assert "not currently held: watch core/configmaps mine" in body["message"]
    # Binding a role whose rules the writer holds is fine; one it does not hold needs `bind`.
    assert (await writer.call("POST", f"{RBAC}/namespaces/ns/rolebindings", binding("b1", "held", "reader")))[0] == 201
    assert (await admin.call("POST", f"{RBAC}/namespaces/ns/roles", role("more", more)))[0] == 201
    assert (await writer.call("POST", f"{RBAC}/namespaces/ns/rolebindings", binding("b2", "more", "reader")))[0] == 403
    escalate = [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate", "bind"]}]
    assert (await admin.call("POST", f"{RBAC}/namespaces/ns/roles", role("esc", escalate)))[0] == 201
    assert (await admin.call("POST", f"{RBAC}/namespaces/ns/rolebindings", binding("esc", "esc", "reader")))[0] == 201
    assert (await writer.call("POST", f"{RBAC}/namespaces/ns/roles", role("more2", more)))[0] == 201
    assert (await writer.call("POST", f"{RBAC}/namespaces/ns/rolebindings", binding("b3", "more", "reader")))[0] == 201


async def test_a_strict_server_refuses_requests_without_a_token(session: aiohttp.ClientSession) -> None:
    async with ApiServer(anonymous=ANONYMOUS) as strict:
        nobody = Client(strict, session, None)
        assert (await nobody.call("GET", "/version"))[0] == 200
        assert (await nobody.call("GET", "/apis"))[0] == 403
        code, body = await nobody.call("GET", "/api/v1/namespaces")
        assert code == 403
        assert 'User "system:anonymous"' in body["message"]
        assert (await Client(strict, session, strict.tokens.admin_token).call("GET", "/api/v1/namespaces"))[0] == 200
