"""What an API operation receives and answers, and the checks every operation shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shared import errors
from shared.documents.base import JsonObject

API_VERSION = "2018-05-01"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    route: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # the JSON answer, serialised by the HTTP edge (functions/, shared/localhost/)
    headers: dict[str, str] = field(default_factory=dict)


def ok(body: Any) -> ApiResponse:  # body: wire JSON (see ApiResponse)
    return ApiResponse(200, body)


def check_api_version(req: ApiRequest) -> None:
    version = req.query.get("api-version")
    if version is None:
        raise errors.InvalidParameter(
            f"The api-version query parameter is required; this service supports '{API_VERSION}'.",
            target="api-version", code="MissingApiVersionParameter")
    if version != API_VERSION:
        raise errors.InvalidParameter(
            f"The api-version '{version[:40]}' is not supported; use '{API_VERSION}'.",
            target="api-version", code="InvalidApiVersionParameter")


def parse_body(model: type[M], req: ApiRequest) -> M:
    """Validate the JSON body against a request model; every problem is named in the error."""
    if not req.body.strip():
        raise errors.InvalidRequestContent("The request body is required.", target="body")
    try:
        return model.model_validate_json(req.body, by_alias=True, by_name=False)  # wire names only
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError, prefix: str = "") -> errors.ApiError:
    """A 400 naming every field pydantic refused; `prefix` places the model inside the body."""
    problems = exc.errors(include_url=False, include_input=False)
    if prefix:
        problems = [{**p, "loc": (prefix, *p["loc"])} for p in problems]
    if problems and problems[0]["type"] == "json_invalid":
        return errors.InvalidRequestContent(f"The request body is not valid JSON: {problems[0]['msg']}.",
                                            target="body")
    details = [errors.ErrorDetail("InvalidParameter", _describe(p), _path(p["loc"])) for p in problems]
    first = details[0]
    message = first.message if len(details) == 1 else f"{first.message} (and {len(details) - 1} more)"
    return errors.InvalidRequestContent(message, target=first.target, details=details)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part).startswith(("function-", "lax-", "strict-")):
            continue  # pydantic's internal validator tags carry no meaning for the caller
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _describe(problem: ErrorDetails) -> str:
    target = _path(problem["loc"])
    msg = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "missing":
        return f"The property '{target}' is required."
    if problem["type"] == "extra_forbidden":
        return f"The property '{target}' is not recognised."
    return f"The property '{target}' is not valid: {msg}."


def int_param(req: ApiRequest, name: str, default: int, low: int, high: int) -> int:
    raw = req.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidParameter(f"The {name} '{raw[:40]}' is not an integer.", target=name) from None
    if not low <= value <= high:
        raise errors.InvalidParameter(f"The {name} must be from {low} to {high}; got {value}.", target=name)
    return value


def page_link(req: ApiRequest, token: str | None) -> str | None:
    """The nextLink: this request's URL with the page token set."""
    if token is None:
        return None
    parts = urlsplit(req.url)
    query = {k: v for k, v in req.query.items() if k != "$skiptoken"}
    query["$skiptoken"] = token
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def page(values: list[Any], req: ApiRequest, token: str | None) -> ApiResponse:
    """A page of a list answer (values: wire JSON, each a resource as reads return it)."""
    body: JsonObject = {"value": values}
    link = page_link(req, token)
    if link:
        body["nextLink"] = link
    return ok(body)


def small_int(text: str) -> int | None:
    """A non-negative integer written in at most 18 ASCII digits, else None: str.isdigit() alone
    also takes '²' and Arabic digits, and int() refuses more than 4300 digits (a 500, not a 400)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def page_of(values: list[Any], req: ApiRequest, max_results: int) -> ApiResponse:
    """One page of a list computed whole (a folder's files, a cluster's nodes): the token is the
    offset of the next page."""
    start = small_int(req.query.get("$skiptoken", "0"))
    if start is None:
        raise errors.InvalidParameter("The $skiptoken is not one this service gave.", target="$skiptoken")
    end = start + max_results
    return page(values[start:end], req, str(end) if end < len(values) else None)
