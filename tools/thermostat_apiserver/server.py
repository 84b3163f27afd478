"""The emulated API server as one object: start it, point clients at it, stop it.

    async with ApiServer(pod_ready_delay_s=0.5) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig")   # for kubectl, Kopf, the kubernetes client
        ...                                             # api.url, api.store, api.audit, api.kmock

It serves on loopback, with the RoutedModel CRD installed (or the CRDs given), the default
namespaces, a Deployment controller and a Pod runner (see :mod:`pods` for the hook).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp.web
import kmock
import yaml
from kmock._internal import rendering

from thermostat_apiserver import discovery, errors, handlers
from thermostat_apiserver.admission import CrdAdmission
from thermostat_apiserver.defaults import BuiltinDefaults
from thermostat_apiserver.deployments import DeploymentController
from thermostat_apiserver.frontend import KmockFrontend
from thermostat_apiserver.identity import Tokens, User, token_request
from thermostat_apiserver.pods import DelayedReady, PodRunner, PodSupervisor
from thermostat_apiserver.rbac import Authorizer, EscalationCheck, attributes, non_resource_allowed
from thermostat_apiserver.resources import BUILTIN, CRD_KEY, Registry
from thermostat_apiserver.routing import Route
from thermostat_apiserver.store import Event, Obj, Store

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public")


def _default_crds() -> list[Obj]:
    from thermostat.api.crd import routedmodel_crd

    return [routedmodel_crd()]


class ApiServer:
    """An emulated Kubernetes API server on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        pod_ready_delay_s: float = 1.0,
        pod_runner: PodRunner | None = None,
        crds: list[Obj] | None = None,
        history: int = 10_000,
        anonymous: User | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.store = Store(history=history)
        self.registry = Registry()
        for rt in BUILTIN:
            self.store.register(rt)
        self.tokens = Tokens(self.store, anonymous=anonymous, admin_token=admin_token)
        self.authorizer = Authorizer(self.store)
        self.store.admissions += [BuiltinDefaults(), CrdAdmission(self.store), EscalationCheck(self.authorizer)]
        self.store.listeners.append(self._on_event)
        self.controller = DeploymentController(self.store)
        self.pods = PodSupervisor(self.store, pod_runner or DelayedReady(pod_ready_delay_s))
        self.kmock = KmockFrontend(dispatch=self._dispatch, gate=self._gate)
        self._host, self._port = host, port
        self._crds = _default_crds() if crds is None else crds
        self._server: kmock.Server | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the API server is not running: enter `async with ApiServer() as api:` first")
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def audit(self) -> list[dict[str, Any]]:
        """Every request served: verb, group, resource, subresource, namespace, name, userAgent, code."""
        return self.kmock.audit

    async def __aenter__(self) -> Self:
        await self.kmock.__aenter__()
        self._server = kmock.Server(self.kmock, host=self._host, port=self._port or None)
        await self._server.__aenter__()
        self.controller.start()
        for name in DEFAULT_NAMESPACES:
            self.store.create(
                self.registry.require("", "v1", "namespaces"),
                None,
                {"metadata": {"name": name}, "status": {"phase": "Active"}},
            )
        crd_type = self.registry.require("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for crd in self._crds:
            self.store.create(crd_type, None, crd)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.store.close_watches()
        await self.pods.stop()
        await self.controller.stop()
        if self._server is not None:
            await self._server.__aexit__(exc_type, exc, tb)
            self._server = None
        await self.kmock.__aexit__(exc_type, exc, tb)

    def kubeconfig(
        self, *, namespace: str = "default", token: str | None = None, user: str = "thermostat-admin"
    ) -> dict[str, Any]:
        """A kubeconfig for this server: the admin's token unless ``token`` (a ServiceAccount's) is given."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "thermostat-emulated", "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {"token": token or self.tokens.admin_token}}],
            "contexts": [
                {
                    "name": "thermostat-emulated",
                    "context": {"cluster": "thermostat-emulated", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "thermostat-emulated",
        }

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default", token: str | None = None) -> Path:
        """Write a kubeconfig for this server: the admin's (``system:masters``), or with a ServiceAccount's token."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = self.kubeconfig(
            namespace=namespace, token=token, user="service-account" if token else "thermostat-admin"
        )
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
        return path

    def _gate(
        self, route: Route, method: str, query: dict[str, str], headers: dict[str, str], path: str
    ) -> tuple[User | None, errors.ApiError | None]:
        """Authenticate the bearer token, then authorize the request with RBAC."""
        try:
            user = self.tokens.authenticate(headers.get("Authorization", ""))
        except errors.ApiError as refusal:
            return None, refusal
        if route.plural is None:
            if non_resource_allowed(user, path):
                return user, None
            return user, errors.ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot get path "{path}"')
        try:
            self.authorizer.check(user, attributes(route, method, query))
        except errors.ApiError as refusal:
            return user, refusal
        return user, None

    def _on_event(self, event: Event) -> None:
        if event.key == CRD_KEY:
            if event.type == "DELETED":
                self.registry.drop_crd(event.obj["metadata"]["name"])
            else:
                for rt in self.registry.set_crd(event.obj):
                    self.store.register(rt)
        elif event.key == "pods":
            self.pods.on_event(event.type, event.obj)
        self.controller.on_event(event)

    async def _dispatch(self, request: rendering.Request, route: Route, data: Any) -> aiohttp.web.StreamResponse:
        if route.plural is None:
            return aiohttp.web.json_response(self._discovery(request.url.path, route))
        rt = self.registry.find(route.group or "", route.version or "", route.plural)
        if rt is None:
            raise errors.ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource "
                f"({route.plural} in {route.group or 'core'}/{route.version})",
            )
        req = handlers.ApiRequest(
            method=str(request.method.value).upper(),
            route=route,
            rt=rt,
            params=dict(request.params),
            headers=dict(request.headers),
            body=data,
            raw=request._raw_request,
        )
        return await self._serve(req)

    async def _serve(self, req: handlers.ApiRequest) -> aiohttp.web.StreamResponse:
        named = req.route.name is not None
        if req.route.subresource == "token" and req.rt.has("token") and req.method == "POST" and named:
            assert req.route.name is not None
            body = token_request(self.tokens, req.rt, req.namespace, req.route.name, req.body)
            return aiohttp.web.json_response(body, status=201)
        if req.route.subresource not in (None, "status", "scale") or (
            req.route.subresource and not req.rt.has(req.route.subresource)
        ):
            raise errors.ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({req.rt.plural}/{req.route.subresource})",
            )
        if req.method == "GET" and req.params.get("watch", "").lower() in ("true", "1"):
            return await handlers.watch_objects(self.store, req)
        verbs = {
            ("GET", False): handlers.list_objects,
            ("GET", True): handlers.get_object,
            ("POST", False): handlers.create_object,
            ("PUT", True): handlers.replace_object,
            ("PATCH", True): handlers.patch_object,
            ("DELETE", True): handlers.delete_object,
            ("DELETE", False): handlers.delete_collection,
        }
        verb = verbs.get((req.method, named))
        if verb is None:
            raise errors.ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.route}")
        code, body = verb(self.store, req)
        return aiohttp.web.Response(status=code, text=json.dumps(body), content_type="application/json")

    def _discovery(self, path: str, route: Route) -> Any:
        if path.startswith("/openapi/v3"):
            return self._openapi(path)
        if path == "/version":
            return discovery.SERVER_VERSION
        if route.group is None:
            if path.rstrip("/") == "/apis":
                return discovery.api_group_list(self.registry)
            raise errors.ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        if route.group == "" and route.version is None:
            return discovery.api_versions(f"{self._host}:{self._server.port if self._server else 0}")
        if route.version is None:
            versions = self.registry.group_versions().get(route.group)
            if not versions:
                raise errors.ApiError(404, "NotFound", f"the server could not find the group {route.group!r}")
            return {"kind": "APIGroup", "apiVersion": "v1", **discovery.api_group(route.group, versions)}
        listing = discovery.api_resource_list(self.registry, route.group, route.version)
        if listing is None:
            raise errors.ApiError(404, "NotFound", f"the server could not find {route.group}/{route.version}")
        return listing

    def _openapi_documents(self) -> dict[str, Any]:
        from thermostat.api.validation import crd_version_schema

        schemas = {
            crd["metadata"]["name"]: crd
            for _, crd in self.store.all_objects()
            if "spec" in crd and crd.get("kind") == "CustomResourceDefinition"
        }
        documents = {}
        for group, versions in self.registry.group_versions().items():
            for version in versions:
                by_crd = {
                    name: crd_version_schema(crd, version)
                    for name, crd in schemas.items()
                    if crd["spec"]["group"] == group and any(v["name"] == version for v in crd["spec"]["versions"])
                }
                path = f"apis/{group}/{version}" if group else f"api/{version}"
                documents[path] = discovery.openapi_v3_document(self.registry, group, version, by_crd)
        return documents

    def _openapi(self, path: str) -> Any:
        documents = self._openapi_documents()
        rest = path[len("/openapi/v3") :].strip("/")
        if not rest:
            return discovery.openapi_v3_index(self.registry, documents)
        if documents.get(rest) is None:
            raise errors.ApiError(404, "NotFound", f"no OpenAPI document for {rest}")
        return documents[rest]
