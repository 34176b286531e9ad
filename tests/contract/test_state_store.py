"""The StateStore contract: one body per case, run against every adapter (SQLite and Cosmos DB).

Both adapters must answer alike so the core behaves the same locally and on Azure; the Cosmos DB
adapter runs against @vercel/cosmosdb-server, started by the session fixture ``cosmos_server``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.ports.state_store import (
    Conflict,
    ContainerSpec,
    NotFound,
    PreconditionFailed,
    Query,
    StateStore,
    StoreError,
)

ITEMS = "items"
CONTAINERS = [
    ContainerSpec(ITEMS, indexed=("kind", "meta.owner", "rank", "seq"), lookups=(("kind", "meta.owner"), ("v",))),
    ContainerSpec("other"),
]
# The test server does not check request signatures; the client only needs valid base64.
_TEST_KEY = base64.b64encode(b"cosmosdb-server ignores signatures").decode()
_SYSTEM_PROPERTIES = {"_rid", "_self", "_attachments", "_ts"}


def _sqlite_store(tmp_path: Any) -> StateStore:
    from shared.adapters.local.sqlite_store import SqliteStateStore

    return SqliteStateStore(tmp_path / "state" / "store.db")  # "state/" does not exist yet


def _cosmos_store(endpoint: str) -> StateStore:
    from shared.adapters.azure.cosmos_store import CosmosStateStore

    # A fresh database per test: tests never see each other's documents.
    return CosmosStateStore(endpoint, _TEST_KEY, f"test-{uuid.uuid4().hex}", verify_tls=False,
                            endpoint_discovery=False)


@pytest.fixture(params=["sqlite", pytest.param("cosmos", marks=pytest.mark.cosmos)])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[StateStore]:
    """An opened, empty store of each adapter kind."""
    if request.param == "sqlite":
        s = _sqlite_store(tmp_path)
    else:
        s = _cosmos_store(request.getfixturevalue("cosmos_server"))
    s.open(CONTAINERS)
    yield s
    s.close()


def doc(id: str, pk: str = "p1", **fields: Any) -> dict[str, Any]:
    return {"id": id, "pk": pk, **fields}


def without_etag(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "_etag"}


def ids(docs: list[dict[str, Any]]) -> list[str]:
    return [d["id"] for d in docs]


# -- point operations ---------------------------------------------------------------------------


def test_create_then_read_round_trips_with_an_etag(store: StateStore) -> None:
    created = store.create(ITEMS, doc("a", kind="job", n=1))
    assert isinstance(created["_etag"], str) and created["_etag"]
    assert without_etag(created) == doc("a", kind="job", n=1)
    assert not _SYSTEM_PROPERTIES & created.keys()
    read = store.read(ITEMS, "p1", "a")
    assert read == created


def test_create_duplicate_is_a_conflict(store: StateStore) -> None:
    store.create(ITEMS, doc("a"))
    with pytest.raises(Conflict):
        store.create(ITEMS, doc("a", n=2))
    assert without_etag(store.read(ITEMS, "p1", "a")) == doc("a")  # type: ignore[arg-type]


def test_read_missing_is_none(store: StateStore) -> None:
    # The Cosmos adapter works around @vercel/cosmosdb-server answering 500 here (see the adapter).
    assert store.read(ITEMS, "p1", "nope") is None
    store.create(ITEMS, doc("a", pk="p1"))
    assert store.read(ITEMS, "p2", "a") is None  # right id, other partition


def test_replace_with_current_etag_changes_the_etag(store: StateStore) -> None:
    first = store.create(ITEMS, doc("a", n=1))
    second = store.replace(ITEMS, {**first, "n": 2}, etag=first["_etag"])
    assert second["n"] == 2 and second["_etag"] != first["_etag"]
    assert store.read(ITEMS, "p1", "a") == second


def test_replace_with_stale_etag_fails_and_keeps_the_document(store: StateStore) -> None:
    first = store.create(ITEMS, doc("a", n=1))
    second = store.replace(ITEMS, doc("a", n=2), etag=first["_etag"])
    with pytest.raises(PreconditionFailed):
        store.replace(ITEMS, doc("a", n=3), etag=first["_etag"])
    assert store.read(ITEMS, "p1", "a") == second


def test_replace_without_etag_is_unconditional(store: StateStore) -> None:
    store.create(ITEMS, doc("a", n=1))
    replaced = store.replace(ITEMS, doc("a", n=2))
    assert store.read(ITEMS, "p1", "a") == replaced


@pytest.mark.parametrize("etag", [None, "some-etag"])
def test_replace_missing_is_not_found(store: StateStore, etag: str | None) -> None:
    with pytest.raises(NotFound):
        store.replace(ITEMS, doc("nope"), etag=etag)


def test_upsert_inserts_then_overwrites(store: StateStore) -> None:
    inserted = store.upsert(ITEMS, doc("a", n=1))
    assert store.read(ITEMS, "p1", "a") == inserted
    overwritten = store.upsert(ITEMS, doc("a", m=2))
    assert without_etag(overwritten) == doc("a", m=2)  # a full overwrite, not a merge
    assert overwritten["_etag"] != inserted["_etag"]
    assert store.read(ITEMS, "p1", "a") == overwritten


def test_delete_without_etag(store: StateStore) -> None:
    store.create(ITEMS, doc("a"))
    store.delete(ITEMS, "p1", "a")
    assert store.read(ITEMS, "p1", "a") is None


def test_delete_with_etag(store: StateStore) -> None:
    first = store.create(ITEMS, doc("a", n=1))
    second = store.replace(ITEMS, doc("a", n=2))
    with pytest.raises(PreconditionFailed):
        store.delete(ITEMS, "p1", "a", etag=first["_etag"])
    assert store.read(ITEMS, "p1", "a") == second
    store.delete(ITEMS, "p1", "a", etag=second["_etag"])
    assert store.read(ITEMS, "p1", "a") is None


@pytest.mark.parametrize("etag", [None, "some-etag"])
def test_delete_missing_is_not_found(store: StateStore, etag: str | None) -> None:
    with pytest.raises(NotFound):
        store.delete(ITEMS, "p1", "nope", etag=etag)


def test_same_id_in_two_partitions_are_distinct(store: StateStore) -> None:
    store.create(ITEMS, doc("a", pk="p1", n=1))
    store.create(ITEMS, doc("a", pk="p2", n=2))
    assert store.read(ITEMS, "p1", "a")["n"] == 1  # type: ignore[index]
    assert store.read(ITEMS, "p2", "a")["n"] == 2  # type: ignore[index]
    store.delete(ITEMS, "p1", "a")
    assert store.read(ITEMS, "p1", "a") is None
    assert store.read(ITEMS, "p2", "a")["n"] == 2  # type: ignore[index]


def test_containers_are_separate(store: StateStore) -> None:
    store.create(ITEMS, doc("a"))
    assert store.read("other", "p1", "a") is None
    store.create("other", doc("a"))


def test_unopened_container_is_a_store_error(store: StateStore) -> None:
    with pytest.raises(StoreError):
        store.read("never-opened", "p1", "a")


# -- documents ----------------------------------------------------------------------------------


def test_nested_unicode_and_large_documents_round_trip(store: StateStore) -> None:
    nested = doc("nested", meta={"owner": "ålice", "tags": ["x", "y"], "deep": {"a": [1, 2.5, None, True, {"b": {}}]}},
                 text="Grüße, 世界 🚀 \"quotes\" \\ backslash \n newline", empty_list=[], null=None)
    large = doc("large", blob="é" * 30_000 + "x" * 21_000, items=[{"i": i, "s": str(i) * 8} for i in range(500)])
    assert 100_000 < len(json.dumps(large, ensure_ascii=False).encode()) < 110_000  # ~100 KB of UTF-8
    for d in (nested, large):
        created = store.create(ITEMS, d)
        assert without_etag(created) == d
        assert without_etag(store.read(ITEMS, "p1", d["id"])) == d  # type: ignore[arg-type]


def test_returned_documents_are_independent_copies(store: StateStore) -> None:
    original = doc("a", meta={"owner": "alice"}, tags=["x"])
    created = store.create(ITEMS, original)
    original["meta"]["owner"] = "mallory"  # the caller's input, after the call
    created["tags"].append("changed")
    read = store.read(ITEMS, "p1", "a")
    assert read is not None and read["meta"] == {"owner": "alice"} and read["tags"] == ["x"]
    read["meta"]["owner"] = "eve"
    (queried,) = store.query(ITEMS, Query(where={"id": "a"}))
    queried["tags"].clear()
    again = store.read(ITEMS, "p1", "a")
    assert again == {**doc("a", meta={"owner": "alice"}, tags=["x"]), "_etag": created["_etag"]}


def test_a_caller_supplied_etag_field_is_ignored_on_write(store: StateStore) -> None:
    created = store.create(ITEMS, {**doc("a"), "_etag": "mine"})
    assert created["_etag"] != "mine"
    assert store.read(ITEMS, "p1", "a") == created


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_read_modify_write_with_etags_loses_no_update(store: StateStore) -> None:
    threads, increments = 8, 15
    store.create(ITEMS, doc("counter", n=0))

    def worker(_: int) -> None:
        for _ in range(increments):
            while True:
                current = store.read(ITEMS, "p1", "counter")
                assert current is not None
                try:
                    store.replace(ITEMS, {**current, "n": current["n"] + 1}, etag=current["_etag"])
                    break
                except PreconditionFailed:
                    continue  # someone else wrote first: read again

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    final = store.read(ITEMS, "p1", "counter")
    assert final is not None and final["n"] == threads * increments


# -- queries ------------------------------------------------------------------------------------


def _seed(store: StateStore) -> list[dict[str, Any]]:
    """Twelve documents over two partitions with mixed field types."""
    docs = [
        doc(f"d{i:02d}", pk=f"p{i % 2}", kind="job" if i % 3 else "pool", seq=i, rank=i % 3,
            active=i % 2 == 0, score=i * 0.5, meta={"owner": "alice" if i < 6 else "bob"})
        for i in range(12)
    ]
    for d in docs:
        store.create(ITEMS, d)
    return docs


def _expect(docs: list[dict[str, Any]], keep: Any) -> list[str]:
    return sorted(d["id"] for d in docs if keep(d))


def test_query_equality_on_top_level_and_nested_paths(store: StateStore) -> None:
    docs = _seed(store)
    assert sorted(ids(store.query(ITEMS, Query(where={"kind": "pool"})))) == _expect(docs, lambda d: d["kind"] == "pool")
    assert sorted(ids(store.query(ITEMS, Query(where={"meta.owner": "bob"})))) == _expect(
        docs, lambda d: d["meta"]["owner"] == "bob")
    assert sorted(ids(store.query(ITEMS, Query(where={"kind": "job", "meta.owner": "alice"})))) == _expect(
        docs, lambda d: d["kind"] == "job" and d["meta"]["owner"] == "alice")
    assert store.query(ITEMS, Query(where={"kind": "nothing"})) == []


def test_query_returns_documents_with_etags(store: StateStore) -> None:
    created = store.create(ITEMS, doc("a", kind="job"))
    assert store.query(ITEMS, Query(where={"kind": "job"})) == [created]


def test_query_booleans_and_numbers(store: StateStore) -> None:
    docs = _seed(store)
    assert sorted(ids(store.query(ITEMS, Query(where={"active": True})))) == _expect(docs, lambda d: d["active"])
    assert sorted(ids(store.query(ITEMS, Query(where={"active": False})))) == _expect(docs, lambda d: not d["active"])
    assert sorted(ids(store.query(ITEMS, Query(where={"rank": 2})))) == _expect(docs, lambda d: d["rank"] == 2)
    assert ids(store.query(ITEMS, Query(where={"score": 1.5}))) == ["d03"]
    assert ids(store.query(ITEMS, Query(where={"score": 2}))) == ["d04"]  # 2 == 2.0, as in JSON


def test_query_compares_values_of_the_same_json_type_only(store: StateStore) -> None:
    for id_, v in [("bool", True), ("int", 1), ("str", "1"), ("null", None), ("false", False), ("zero", 0)]:
        store.create(ITEMS, doc(id_, v=v))
    store.create(ITEMS, doc("missing"))
    assert ids(store.query(ITEMS, Query(where={"v": True}))) == ["bool"]
    assert ids(store.query(ITEMS, Query(where={"v": 1}))) == ["int"]
    assert ids(store.query(ITEMS, Query(where={"v": "1"}))) == ["str"]
    assert ids(store.query(ITEMS, Query(where={"v": False}))) == ["false"]
    assert ids(store.query(ITEMS, Query(where={"v": 0}))) == ["zero"]
    assert ids(store.query(ITEMS, Query(where={"v": None}))) == ["null"]  # not the missing field
    assert sorted(ids(store.query(ITEMS, Query(where={"v": [True, "1"]})))) == ["bool", "str"]


def test_a_string_filter_matches_strings_only_not_objects_or_arrays_with_that_text(store: StateStore) -> None:
    """Equality on a looked-up path: a string never equals an object, an array or a number."""
    for id_, v in [("obj", {"a": 1}), ("arr", [1]), ("str", '{"a":1}'), ("plain", "x"), ("num", 7)]:
        store.create(ITEMS, doc(id_, v=v))
    assert ids(store.query(ITEMS, Query(where={"v": '{"a":1}'}))) == ["str"]
    assert ids(store.query(ITEMS, Query(where={"v": "[1]"}))) == []
    assert ids(store.query(ITEMS, Query(where={"v": "7"}))) == []
    assert ids(store.query(ITEMS, Query(where={"v": ["x", "7"]}))) == ["plain"]
    assert store.count(ITEMS, {"v": "x"}) == 1


def test_keyset_pages_of_a_lookup_come_in_id_order_within_a_partition(store: StateStore) -> None:
    docs = _seed(store)
    wanted = sorted(i for i in _expect(docs, lambda d: d["pk"] == "p0" and d["kind"] == "job"
                                       and d["meta"]["owner"] == "bob"))
    seen: list[str] = []
    after: tuple[str, Any] | None = None
    while page := store.query(ITEMS, Query(where={"kind": "job", "meta.owner": "bob"}, after=after,
                                           order_by=["id"], limit=2), pk="p0"):
        seen += ids(page)
        after = ("id", page[-1]["id"])
    assert seen == wanted


def test_query_in_lists(store: StateStore) -> None:
    docs = _seed(store)
    assert sorted(ids(store.query(ITEMS, Query(where={"rank": [0, 2]})))) == _expect(docs, lambda d: d["rank"] in (0, 2))
    assert sorted(ids(store.query(ITEMS, Query(where={"id": ("d01", "d05", "zz")})))) == ["d01", "d05"]
    assert sorted(ids(store.query(ITEMS, Query(where={"kind": ["job"], "meta.owner": ["bob"]})))) == _expect(
        docs, lambda d: d["kind"] == "job" and d["meta"]["owner"] == "bob")
    assert store.query(ITEMS, Query(where={"rank": []})) == []


def test_query_order_by_and_limit(store: StateStore) -> None:
    docs = _seed(store)
    by_seq_desc_created = [d["id"] for d in sorted(docs, key=lambda d: -d["seq"])]
    for d in docs:  # rewrite so that seq order differs from creation order
        store.replace(ITEMS, {**d, "seq": 100 - d["seq"]})
    assert ids(store.query(ITEMS, Query(order_by=["seq"]))) == by_seq_desc_created
    assert ids(store.query(ITEMS, Query(order_by=["seq"], limit=3))) == by_seq_desc_created[:3]
    assert ids(store.query(ITEMS, Query(where={"kind": "pool"}, order_by=["seq"], limit=2))) == [
        i for i in by_seq_desc_created if int(i[1:]) % 3 == 0][:2]
    assert ids(store.query(ITEMS, Query(order_by=["meta.owner", "seq"]))) == (
        [i for i in by_seq_desc_created if int(i[1:]) < 6] + [i for i in by_seq_desc_created if int(i[1:]) >= 6])
    expected = sorted(docs, key=lambda d: (d["rank"], 100 - d["seq"]))
    assert ids(store.query(ITEMS, Query(order_by=["rank", "seq"]))) == [d["id"] for d in expected]
    assert ids(store.query(ITEMS, Query(order_by=["rank", "seq"], limit=5))) == [d["id"] for d in expected][:5]
    assert len(store.query(ITEMS, Query(limit=4))) == 4


def test_query_after_pages_through_everything(store: StateStore) -> None:
    docs = _seed(store)
    for page_size in (1, 5, 12, 50):
        seen: list[str] = []
        pages = 0
        after: tuple[str, Any] | None = None
        while True:
            page = store.query(ITEMS, Query(order_by=["seq"], after=after, limit=page_size))
            if not page:
                break
            pages += 1
            assert len(page) <= page_size
            seen += ids(page)
            after = ("seq", page[-1]["seq"])
        assert seen == [d["id"] for d in docs]
        assert pages == -(-len(docs) // page_size)
    # a string key and a filter combine with the bound
    page = store.query(ITEMS, Query(where={"kind": "job"}, order_by=["id"], after=("id", "d04"), limit=3))
    assert ids(page) == ["d05", "d07", "d08"]


def test_query_scoped_to_a_partition_or_across_all(store: StateStore) -> None:
    docs = _seed(store)
    assert sorted(ids(store.query(ITEMS, Query(), pk="p1"))) == _expect(docs, lambda d: d["pk"] == "p1")
    assert sorted(ids(store.query(ITEMS, Query(where={"kind": "job"}), pk="p0"))) == _expect(
        docs, lambda d: d["pk"] == "p0" and d["kind"] == "job")
    assert ids(store.query(ITEMS, Query(order_by=["seq"], after=("seq", 5), limit=2), pk="p0")) == ["d06", "d08"]
    assert sorted(ids(store.query(ITEMS, Query()))) == _expect(docs, lambda d: True)
    assert store.query(ITEMS, Query(), pk="elsewhere") == []


def test_count(store: StateStore) -> None:
    docs = _seed(store)
    assert store.count(ITEMS, {}) == len(docs)
    assert store.count(ITEMS, {"kind": "job"}) == len(_expect(docs, lambda d: d["kind"] == "job"))
    assert store.count(ITEMS, {"kind": "job"}, pk="p1") == len(_expect(docs, lambda d: d["kind"] == "job" and d["pk"] == "p1"))
    assert store.count(ITEMS, {"rank": [1, 2], "meta.owner": "alice"}) == len(
        _expect(docs, lambda d: d["rank"] in (1, 2) and d["meta"]["owner"] == "alice"))
    assert store.count(ITEMS, {"active": True}, pk="p0") == 6
    assert store.count(ITEMS, {}, pk="elsewhere") == 0
    assert store.count(ITEMS, {"rank": []}) == 0
