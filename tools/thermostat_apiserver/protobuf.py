"""Protobuf request bodies of a few kinds, for kubectl's typed ``create`` generators.

``kubectl create namespace|configmap|secret|serviceaccount|deployment`` send
``application/vnd.kubernetes.protobuf`` (the ``k8s\\0`` envelope around the Go type's message). These
kinds are decoded from their field numbers in Kubernetes' ``generated.proto`` (k8s.io/api
``apps/v1`` and ``core/v1``, apimachinery ``meta/v1``), as far as the generators fill them; any
other kind, or a field this table does not know, is a 415 that says to use ``kubectl apply -f``,
never a silently wrong object.
"""

from __future__ import annotations

import base64
from typing import Any

from thermostat_apiserver.errors import ApiError

MAGIC = b"k8s\x00"
Fields = dict[int, tuple[str, str]]  # field number -> (JSON name, how to decode)

TYPE_META: Fields = {1: ("apiVersion", "str"), 2: ("kind", "str")}
UNKNOWN: Fields = {
    1: ("typeMeta", "TypeMeta"),
    2: ("raw", "bytes"),
    3: ("contentEncoding", "str"),
    4: ("contentType", "str"),
}
OBJECT_META: Fields = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    11: ("labels", "map"),
    12: ("annotations", "map"),
    14: ("finalizers", "strs"),
}
MESSAGES: dict[str, Fields] = {
    "TypeMeta": TYPE_META,
    "Unknown": UNKNOWN,
    "ObjectMeta": OBJECT_META,
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "Empty")},
    "NamespaceSpec": {1: ("finalizers", "strs")},
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map"),
        3: ("binaryData", "bytesmap"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "bytesmap"),
        3: ("type", "str"),
        4: ("stringData", "map"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 4: ("automountServiceAccountToken", "bool")},
    # apps/v1: what `kubectl create deployment NAME --image=I [--replicas=N] [--port=P] [-- CMD...]` fills.
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec"), 3: ("status", "Empty")},
    "DeploymentSpec": {
        1: ("replicas", "int"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"),
    },
    "DeploymentStrategy": {1: ("type", "str")},
    "LabelSelector": {1: ("matchLabels", "map"), 2: ("matchExpressions", "[LabelSelectorRequirement]")},
    "LabelSelectorRequirement": {1: ("key", "str"), 2: ("operator", "str"), 3: ("values", "strs")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {2: ("containers", "[Container]")},
    "Container": {
        1: ("name", "str"),
        2: ("image", "str"),
        3: ("command", "strs"),
        4: ("args", "strs"),
        6: ("ports", "[ContainerPort]"),
        8: ("resources", "Empty"),
    },
    "ContainerPort": {1: ("name", "str"), 3: ("containerPort", "int"), 4: ("protocol", "str")},
    "Empty": {},
}
TOP_LEVEL = ("Namespace", "ConfigMap", "Secret", "ServiceAccount", "Deployment")


def _unsupported(what: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the emulated API server cannot read this protobuf body ({what}): write the object as YAML "
        "and use `kubectl apply -f FILE`",
    )


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise _unsupported("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            out.append((number, data[pos : pos + size]))
            pos += size
        else:
            raise _unsupported(f"wire type {wire}")
    return out


def _entry(raw: bytes) -> tuple[str, bytes]:
    parts = dict(_fields(raw))
    key, value = parts.get(1, b""), parts.get(2, b"")
    if not isinstance(key, bytes) or not isinstance(value, bytes):
        raise _unsupported("a malformed map entry")
    return key.decode(), value


def decode_message(data: bytes, message: str) -> dict[str, Any]:
    table = MESSAGES[message]
    result: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in table:
            if value in (b"", 0):
                continue  # an empty field the Go side always writes
            raise _unsupported(f"field {number} of {message}")
        name, how = table[number]
        if how == "bool":
            result[name] = bool(value)
        elif how == "int":
            if not isinstance(value, int):
                raise _unsupported(f"bytes in {message}.{name}")
            result[name] = value
        elif not isinstance(value, bytes):
            raise _unsupported(f"a number in {message}.{name}")
        elif how == "str":
            if value:  # Go writes empty strings; JSON omits them
                result[name] = value.decode()
        elif how == "bytes":
            result[name] = value
        elif how == "strs":
            result.setdefault(name, []).append(value.decode())
        elif how == "map":
            key, item = _entry(value)
            result.setdefault(name, {})[key] = item.decode()
        elif how == "bytesmap":
            key, item = _entry(value)
            result.setdefault(name, {})[key] = base64.b64encode(item).decode()
        elif how.startswith("["):  # a repeated message
            result.setdefault(name, []).append(decode_message(value, how.strip("[]")))
        else:
            decoded = decode_message(value, how)
            if decoded or how != "Empty":
                result[name] = decoded
    return {key: item for key, item in result.items() if item != {}}


def decode(body: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a ``k8s\\0``-enveloped protobuf body of one of the kinds above."""
    if not body.startswith(MAGIC):
        raise _unsupported("no k8s envelope")
    envelope = decode_message(body[len(MAGIC) :], "Unknown")
    type_meta = envelope.get("typeMeta", {})
    kind = type_meta.get("kind", "")
    if kind not in TOP_LEVEL:
        raise _unsupported(f"kind {kind or 'unknown'}")
    obj = decode_message(envelope.get("raw", b""), kind)
    obj.pop("status", None)
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
