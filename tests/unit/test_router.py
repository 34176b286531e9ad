"""Route templates of the local host's router: parameters, literals first, and catch-alls."""

from __future__ import annotations

from shared.localhost.functions_index import IndexedFunction
from shared.localhost.router import Router, compile_route


def http(name: str, route: str, *methods: str) -> IndexedFunction:
    return IndexedFunction(name=name, trigger_type="httpTrigger", func=lambda req: None, route=route,
                           methods=methods or ("GET",))


def test_single_segment_parameters() -> None:
    route = compile_route(http("Get", "workspaces/{workspaceName}/jobs/{jobName}"))
    found = route.pattern.match("/workspaces/ws/jobs/j1")
    assert found is not None and found.groupdict() == {"workspaceName": "ws", "jobName": "j1"}
    assert route.pattern.match("/workspaces/ws/jobs/j1/more") is None
    assert route.catch_all is None and route.literal_segments == 2


def test_catch_all_takes_the_rest_of_the_path() -> None:
    router = Router([http("Files", "files/{*path}")])
    function, params = router.match("GET", "/files/blobs/acct/c/dir/a b.txt")
    assert function is not None and function.name == "Files"
    assert params == {"path": "blobs/acct/c/dir/a b.txt"}
    assert router.match("GET", "/FILES/x")[1] == {"path": "x"}  # case-insensitive, as ASP.NET
    assert router.match("GET", "/files")[1] == {"path": ""}
    assert router.match("GET", "/files/")[1] == {"path": ""}
    assert router.match("GET", "/filesx/a") == (None, False)
    assert router.match("POST", "/files/a") == (None, True)


def test_catch_all_is_not_decoded_twice() -> None:
    """The server hands over a decoded path; '%' in a file name must survive."""
    router = Router([http("Files", "files/{*path}"), http("One", "one/{name}")])
    assert router.match("GET", "/files/100%25 done/a%2Fb")[1] == {"path": "100%25 done/a%2Fb"}
    assert router.match("GET", "/one/a%20b")[1] == {"name": "a b"}  # single segments: as before


def test_catch_all_with_parameters_before_it() -> None:
    route = compile_route(http("Nested", "{kind}/files/{**rest}"))
    found = route.pattern.match("/logs/files/a/b/c")
    assert found is not None and found.groupdict() == {"kind": "logs", "rest": "a/b/c"}
    assert route.catch_all == "rest" and route.literal_segments == 1


def test_literals_beat_parameters_and_parameters_beat_catch_alls() -> None:
    router = Router([http("All", "files/{*path}"), http("Param", "files/{name}"), http("Literal", "files/index")])
    assert router.match("GET", "/files/index")[0].name == "Literal"  # type: ignore[union-attr]
    assert router.match("GET", "/files/other")[0].name == "Param"  # type: ignore[union-attr]
    assert router.match("GET", "/files/a/b")[0].name == "All"  # type: ignore[union-attr]
