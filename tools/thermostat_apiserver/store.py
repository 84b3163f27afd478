"""The object store: what etcd and the API server's storage layer do for the clients.

Every write gets a new ``resourceVersion`` from one counter; a stale one is a 409. The store keeps
uid, generation (bumped on spec changes only), timestamps, the status subresource apart from the
rest, finalizers with ``deletionTimestamp``, and garbage-collects dependents through
``ownerReferences`` as the cluster's garbage collector does. Each write is an event in a bounded
log, so a watch resumes from any resourceVersion still in it, or gets a 410. All methods are
synchronous: in one asyncio loop a write is atomic, and a watch registers without a race.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thermostat_apiserver import errors
from thermostat_apiserver.resources import ResourceType

Obj = dict[str, Any]
Admission = Callable[[ResourceType, Obj | None, Obj, bool], Obj]
Listener = Callable[["Event"], None]
# Fields the server owns: a client's write cannot change them.
_SERVER_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")


@dataclass(frozen=True)
class Event:
    """One change, as a watch streams it."""

    rv: int
    key: str  # ResourceType.key
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj


def timestamp(moment: datetime.datetime | None = None) -> str:
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _omit_empty(meta: Obj) -> None:
    """Empty maps and lists of metadata are not stored (``omitempty`` in Kubernetes' types): a patch
    removing the last annotation leaves no ``annotations: {}`` behind, as on a real server."""
    for key in ("labels", "annotations", "finalizers", "ownerReferences"):
        if key in meta and not meta[key]:
            del meta[key]


def _body(obj: Obj) -> Obj:
    """What generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


# Put on a watch queue to end that stream cleanly.
CLOSE_WATCH = Event(-1, "", "CLOSE", {})


class Store:
    """In-memory objects of every resource type, with the API server's write semantics."""

    def __init__(self, *, history: int = 10_000) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._types: dict[str, ResourceType] = {}
        self._rv = 0
        self._log: deque[Event] = deque()
        self._history = history
        self._compacted = 0  # events up to this resourceVersion are gone from the log
        self._watchers: dict[str, set[asyncio.Queue[Event]]] = {}
        self.admissions: list[Admission] = []
        self.listeners: list[Listener] = []

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    # Reading.
    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._objects.get(rt.key, {}).get((namespace if rt.namespaced else "", name))
        if obj is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        obj = self._objects.get(rt.key, {}).get((namespace if rt.namespaced else "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def objects(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        objs = self._objects.get(rt.key, {})
        keys = sorted(key for key in objs if namespace is None or key[0] == namespace)
        return [copy.deepcopy(objs[key]) for key in keys]

    def all_objects(self) -> list[tuple[str, Obj]]:
        return [(key, obj) for key, objs in self._objects.items() for obj in objs.values()]

    # Watching.
    def watch(self, rt: ResourceType, since: int | None) -> tuple[list[Event], asyncio.Queue[Event]]:
        """Events to replay (current objects, or those after ``since``) and a queue of what follows."""
        if since is None or since == 0:
            replay = [Event(self._rv, rt.key, "ADDED", obj) for obj in self.objects(rt)]
        elif since < self._compacted:
            raise errors.expired(f"too old resource version: {since} ({self._compacted})")
        else:
            replay = [event for event in self._log if event.rv > since and event.key == rt.key]
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._watchers.setdefault(rt.key, set()).add(queue)
        return replay, queue

    def unwatch(self, rt: ResourceType, queue: asyncio.Queue[Event]) -> None:
        self._watchers.get(rt.key, set()).discard(queue)

    def close_watches(self) -> None:
        """End every open watch stream (at shutdown), so the HTTP server need not wait them out."""
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(CLOSE_WATCH)

    # Writing.
    def create(
        self, rt: ResourceType, namespace: str | None, obj: Obj, *, strict: bool = False, dry_run: bool = False
    ) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise errors.invalid(rt.kind, "", rt.group, [("metadata.name", "name or generateName is required")])
        ns = self._namespace_of(rt, namespace, meta)
        if (ns, meta["name"]) in self._objects.get(rt.key, {}):
            raise errors.already_exists(rt.plural, meta["name"], rt.group)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        for key in (*_SERVER_FIELDS, "resourceVersion"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=timestamp(), generation=1)
        _omit_empty(meta)
        if rt.namespaced:
            meta["namespace"] = ns
        obj = self._admit(rt, None, obj, strict)
        if not dry_run:
            self._commit(rt, "ADDED", obj)
        return copy.deepcopy(obj)

    def _namespace_of(self, rt: ResourceType, namespace: str | None, meta: Obj) -> str:
        if not rt.namespaced:
            return ""
        ns = namespace or meta.get("namespace") or "default"
        if namespace and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if rt.key != "namespaces" and ("", ns) not in self._objects.get("namespaces", {}):
            raise errors.not_found("namespaces", ns)
        return str(ns)

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        new: Obj,
        *,
        subresource: str | None = None,
        strict: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """Replace an object (PUT), or its status when ``subresource='status'``; 409 on a stale version."""
        old = self.get(rt, namespace, name)
        sent_rv = (new.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, name, rt.group)
        merged = self._admit(rt, old, self._merged(rt, old, copy.deepcopy(new), subresource), strict)
        if merged == old:
            return old  # a no-op write changes nothing and notifies no one, as on a real server
        if _body(merged) != _body(old):
            merged["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if dry_run:
            return merged
        if merged["metadata"].get("deletionTimestamp") and not merged["metadata"].get("finalizers"):
            return self._remove(rt, merged)
        self._commit(rt, "MODIFIED", merged)
        return copy.deepcopy(merged)

    def _merged(self, rt: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
        if subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        meta = new.setdefault("metadata", {})
        meta["name"] = old["metadata"]["name"]
        if rt.namespaced:
            meta["namespace"] = old["metadata"]["namespace"]
        for key in (*_SERVER_FIELDS, "resourceVersion"):
            meta.pop(key, None)
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        _omit_empty(meta)
        if rt.has("status"):  # with a status subresource, writes to the object never touch status
            new.pop("status", None)
            if "status" in old:
                new["status"] = old["status"]
        return new

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete now, or mark for deletion while finalizers remain; dependents follow (garbage collector)."""
        old = self.get(rt, namespace, name)
        if precondition_uid and precondition_uid != old["metadata"]["uid"]:
            raise errors.conflict(rt.plural, name, rt.group)
        if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, name, rt.group)
        if dry_run:
            return old
        if old["metadata"].get("finalizers"):
            if not old["metadata"].get("deletionTimestamp"):
                old["metadata"].update(deletionTimestamp=timestamp(), deletionGracePeriodSeconds=0)
                self._commit(rt, "MODIFIED", old)
            return old
        return self._remove(rt, old, propagation=propagation)

    def _remove(self, rt: ResourceType, obj: Obj, *, propagation: str = "Background") -> Obj:
        meta = obj["metadata"]
        del self._objects[rt.key][(meta.get("namespace", ""), meta["name"])]
        self._commit(rt, "DELETED", obj, store=False)
        self._collect_dependents(meta["uid"], orphan=propagation == "Orphan")
        if rt.key == "namespaces":
            self._empty_namespace(meta["name"])
        return copy.deepcopy(obj)

    def _collect_dependents(self, owner_uid: str, *, orphan: bool) -> None:
        for key, obj in list(self.all_objects()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == owner_uid for ref in refs):
                continue
            rt = self._type_of(key)
            meta = obj["metadata"]
            if orphan or len(refs) > 1:  # another owner keeps it alive, as the garbage collector decides
                kept = copy.deepcopy(obj)
                kept["metadata"]["ownerReferences"] = [ref for ref in refs if ref.get("uid") != owner_uid]
                self._commit(rt, "MODIFIED", kept)
            elif (meta.get("namespace", ""), meta["name"]) in self._objects.get(key, {}):
                self.delete(rt, meta.get("namespace", ""), meta["name"])

    def _empty_namespace(self, namespace: str) -> None:
        for key, obj in list(self.all_objects()):
            if obj["metadata"].get("namespace") == namespace:
                rt = self._type_of(key)
                if self.find(rt, namespace, obj["metadata"]["name"]) is not None:
                    self.delete(rt, namespace, obj["metadata"]["name"])

    def _type_of(self, key: str) -> ResourceType:
        return self._types[key]

    def register(self, rt: ResourceType) -> None:
        """Make a resource type storable (its objects are shared by all its versions)."""
        self._types.setdefault(rt.key, rt)
        self._objects.setdefault(rt.key, {})

    def _admit(self, rt: ResourceType, old: Obj | None, new: Obj, strict: bool) -> Obj:
        for admission in self.admissions:
            new = admission(rt, old, new, strict)
        return new

    def _commit(self, rt: ResourceType, kind: str, obj: Obj, *, store: bool = True) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if store:
            self._objects.setdefault(rt.key, {})[(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj
        event = Event(self._rv, rt.key, kind, copy.deepcopy(obj))
        if len(self._log) >= self._history:
            self._compacted = self._log.popleft().rv
        self._log.append(event)
        for queue in self._watchers.get(rt.key, ()):
            queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)
