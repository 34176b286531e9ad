"""Errors the API answers with, in Batch AI's CloudError shape (invariant 6: name the field)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error that becomes an HTTP answer: status + {"error": {code, message, target, details}}."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str, *, target: str | None = None, details: list[dict[str, Any]] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.details = details or []
        if code:
            self.code = code

    def body(self) -> dict[str, Any]:
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
                details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The CloudError body; `target` and `details` only when there is something to say."""
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    if details:
        error["details"] = details
    return {"error": error}
