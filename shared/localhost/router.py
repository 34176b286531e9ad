"""Match request paths against Functions route templates, case-insensitively as ASP.NET routing does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from shared.localhost.functions_index import IndexedFunction

_PARAM = re.compile(r"\{(\*{0,2})(\w+)(?::[^}]*)?\}")  # {name}, or the catch-all {*name} / {**name}


@dataclass(frozen=True)
class Route:
    function: IndexedFunction
    pattern: re.Pattern[str]
    literal_segments: int
    catch_all: str | None = None  # the name of the {*name} parameter, if any


def compile_route(function: IndexedFunction) -> Route:
    """A catch-all parameter takes the rest of the path, slashes included (possibly empty)."""
    template = (function.route or function.name).strip("/")
    regex, catch_all = "", None
    for piece in re.split(r"(\{[^}]*\})", template):
        match = _PARAM.fullmatch(piece)
        if match and match.group(1):
            catch_all = match.group(2)
            slash = "/" if regex.endswith("/") else ""  # "files/{*path}" also answers "files"
            regex = regex.removesuffix("/") + f"(?:{slash}(?P<{catch_all}>.*))?"
        else:
            regex += f"(?P<{match.group(2)}>[^/]+)" if match else re.escape(piece)
    literals = sum(1 for s in template.split("/") if not _PARAM.search(s))
    return Route(function, re.compile(f"^/?{regex}/?$", re.IGNORECASE), literals, catch_all)


class Router:
    def __init__(self, functions: list[IndexedFunction]) -> None:
        routes = [compile_route(f) for f in functions if f.trigger_type == "httpTrigger"]
        # literal beats parameter, and a parameter beats a catch-all
        self._routes = sorted(routes, key=lambda r: (-r.literal_segments, r.catch_all is not None))

    def match(self, method: str, path: str) -> tuple[IndexedFunction, dict[str, str]] | tuple[None, bool]:
        """(function, route params), or (None, True) if the path exists for other methods, else (None, False)."""
        path_exists = False
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if not found:
                continue
            if route.function.methods and method.upper() not in route.function.methods:
                path_exists = True
                continue
            # The catch-all is kept as given: the server already decoded the path once, and a file
            # name may hold '%'.
            return route.function, {k: (v or "") if k == route.catch_all else unquote(v)
                                    for k, v in found.groupdict().items()}
        return None, path_exists
