"""Errors the API answers with, in Batch AI's CloudError shape (invariant 6: name the field)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# A CloudError body as it goes on the wire: {"error": {"code", "message", "target"?, "details"?}}.
CloudErrorJson = dict[str, dict[str, object]]


@dataclass(frozen=True)
class ErrorDetail:
    """One problem among several (a request's refused fields, each named)."""

    code: str
    message: str
    target: str | None = None

    def wire(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.target is not None:
            out["target"] = self.target
        return out


class ApiError(Exception):
    """An error that becomes an HTTP answer: status + {"error": {code, message, target, details}}."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str, *, target: str | None = None, details: Sequence[ErrorDetail] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.details = list(details or [])
        if code:
            self.code = code

    def body(self) -> CloudErrorJson:
        return cloud_error(self.code, self.message, self.target, self.details)


class InvalidParameter(ApiError):
    status, code = 400, "InvalidParameter"


class InvalidRequestContent(ApiError):
    status, code = 400, "InvalidRequestContent"


class ResourceNotFound(ApiError):
    status, code = 404, "ResourceNotFound"


class Conflict(ApiError):
    status, code = 409, "Conflict"


class ServiceUnavailable(ApiError):
    status, code = 503, "ServiceUnavailable"


class PayloadTooLarge(ApiError):
    status, code = 413, "RequestEntityTooLarge"


def cloud_error(code: str, message: str, target: str | None = None,
                details: Sequence[ErrorDetail] | None = None) -> CloudErrorJson:
    """The CloudError body; `target` and `details` only when there is something to say."""
    error: dict[str, object] = {"code": code, "message": message}
    if target:
        error["target"] = target
    if details:
        error["details"] = [d.wire() for d in details]
    return {"error": error}
