"""Match request paths against Functions route templates, case-insensitively as ASP.NET routing does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from shared.localhost.functions_index import IndexedFunction

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Route:
    function: IndexedFunction
    pattern: re.Pattern[str]
    literal_segments: int


def compile_route(function: IndexedFunction) -> Route:
    template = (function.route or function.name).strip("/")
    regex = ""
    for piece in re.split(r"(\{[^}]*\})", template):
        match = _PARAM.fullmatch(piece)
        regex += f"(?P<{match.group(1)}>[^/]+)" if match else re.escape(piece)
    literals = sum(1 for s in template.split("/") if not _PARAM.search(s))
    return Route(function, re.compile(f"^/?{regex}/?$", re.IGNORECASE), literals)


class Router:
    def __init__(self, functions: list[IndexedFunction]) -> None:
        routes = [compile_route(f) for f in functions if f.trigger_type == "httpTrigger"]
        self._routes = sorted(routes, key=lambda r: -r.literal_segments)  # literal beats parameter

    def match(self, method: str, path: str) -> tuple[IndexedFunction, dict[str, str]] | tuple[None, bool]:
        """(function, route params), or (None, True) if the path exists for other methods, else (None, False)."""
        path_exists = False
        for route in self._routes:
            found = route.pattern.match(path)
            if not found:
                continue
            if route.function.methods and method.upper() not in route.function.methods:
                path_exists = True
                continue
            return route.function, {k: unquote(v) for k, v in found.groupdict().items()}
        return None, path_exists
