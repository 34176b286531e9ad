"""What a client call can fail with: the service's CloudError, or no service at all."""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """Base of the client's errors; `str()` is one readable line."""


class ServiceUnreachable(ClientError):
    """No endpoint is known, or nothing answers at it."""


class OutputFileNotFound(ClientError):
    """A job ended without the file asked for (ENVIRONMENT.md: "not found", not an empty stream)."""


class ApiError(ClientError):
    """The service refused the request: its HTTP status and CloudError (code, message, target)."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        self.status, self.code, self.message, self.target = status, code, message, target
        self.details = details or []
        super().__init__(f"{code}: {message}" + (f" (target: {target})" if target and target not in message else ""))

    @classmethod
    def from_response(cls, answer: httpx.Response) -> ApiError:
        try:
            error = answer.json().get("error") or {}
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        message = error.get("message") or answer.text[:200].strip() or answer.reason_phrase
        return cls(answer.status_code, error.get("code") or f"HTTP{answer.status_code}", message,
                   error.get("target"), error.get("details"))
