"""API errors rendered as Kubernetes ``Status`` objects, the way clients (kubectl, Kopf) parse them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the server refuses: HTTP status, machine-readable reason, and a message for people."""

    def __init__(self, code: int, reason: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(kind_plural: str, name: str, group: str = "") -> ApiError:
    what = f"{kind_plural}.{group}" if group else kind_plural
    return ApiError(
        404, "NotFound", f'{what} "{name}" not found', details={"name": name, "group": group, "kind": kind_plural}
    )


def already_exists(kind_plural: str, name: str, group: str = "") -> ApiError:
    what = f"{kind_plural}.{group}" if group else kind_plural
    return ApiError(
        409,
        "AlreadyExists",
        f'{what} "{name}" already exists',
        details={"name": name, "group": group, "kind": kind_plural},
    )


def conflict(kind_plural: str, name: str, group: str = "") -> ApiError:
    what = f"{kind_plural}.{group}" if group else kind_plural
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": group, "kind": kind_plural},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, name: str, group: str, causes: list[tuple[str, str]], *, unknown: bool = False) -> ApiError:
    """422 Invalid with one cause per problem: ``field`` names the path, as ``kubectl`` prints it."""
    summary = "; ".join(f"{path}: {message}" if path else message for path, message in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind}.{group} "{name}" is invalid: {summary}' if group else f'{kind} "{name}" is invalid: {summary}',
        details={
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": "FieldValueUnknown" if unknown else "FieldValueInvalid", "message": message, "field": path}
                for path, message in causes
            ],
        },
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
