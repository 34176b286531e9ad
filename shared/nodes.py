"""Node documents: one per node of a cluster, in the "nodes" container, partitioned by cluster.

    id       "<cluster uid>|<node id>"        state    preparing | idle | running | leaving | unusable
    pk       the cluster's uid                job      key of the job whose attempt holds it (or None)
    nodeId   the pool's node id               jobPk    that job's partition key
    cluster  the cluster's store key          attempt  that attempt's number
    address  the node's private address       since    when it entered its state
    credential  SHA-256 of its agent's secret (or None before it registered)

A node is claimed for an attempt by an ETag-guarded write (invariant 3: one run per node), and only
the holder of the cluster's lease claims nodes (see leases.py), so gangs never interleave.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.ports.state_store import Conflict, NotFound, PreconditionFailed, Query, StateStore
from shared.resources import NODES, edit_stored
from shared.scheduler import IDLE, NODE_STATES, PREPARING, RUNNING, NodeView

N = NODES.name


def node_key(uid: str, node_id: str) -> str:
    return f"{uid}|{node_id}"


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def list_docs(store: StateStore, uid: str) -> list[dict[str, Any]]:
    return store.query(N, Query(where={"pk": uid}, order_by=("id",)), pk=uid)


def view(doc: dict[str, Any]) -> NodeView:
    return NodeView(node_id=doc["nodeId"], state=doc["state"], job=doc.get("job"), attempt=doc.get("attempt", 0),
                    since=parse_time(doc.get("since")))


def state_counts(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Batch AI's nodeStateCounts."""
    counts = {state: 0 for state in NODE_STATES}
    for doc in docs:
        counts[doc["state"]] += 1
    return {f"{state}NodeCount": counts[state] for state in NODE_STATES}


def new_doc(uid: str, node_id: str, cluster_key: str, cluster_pk: str, address: str, now: datetime,
            state: str = PREPARING) -> dict[str, Any]:
    return {"id": node_key(uid, node_id), "pk": uid, "nodeId": node_id, "cluster": cluster_key,
            "clusterPk": cluster_pk, "address": address, "state": state, "job": None, "jobPk": None,
            "attempt": 0, "since": stamp(now), "credential": None, "error": None}


def ensure(store: StateStore, doc: dict[str, Any]) -> None:
    """Create the node's document unless it exists (the agent may have registered first)."""
    try:
        store.create(N, doc)
    except Conflict:
        pass


def change(store: StateStore, uid: str, node_id: str, edit: Callable[[dict[str, Any]], bool]
           ) -> dict[str, Any] | None:
    """Apply `edit` under the node's ETag (it returns False to leave the node as it is).
    Returns the node as written, or None when it is gone or `edit` declined."""
    return edit_stored(store, N, uid, node_key(uid, node_id), edit)


def claim(store: StateStore, doc: dict[str, Any], job_key: str, job_pk: str, attempt: int, now: datetime) -> bool:
    """Take a free node for one attempt, only if nobody changed it since `doc` was read."""
    taken = dict(doc, state=RUNNING, job=job_key, jobPk=job_pk, attempt=attempt, since=stamp(now))
    try:
        store.replace(N, taken, etag=doc["_etag"])
        return True
    except (PreconditionFailed, NotFound):
        return False


def release(store: StateStore, uid: str, node_id: str, job_key: str, attempt: int, now: datetime) -> bool:
    """Give back a node the attempt held: idle again, or still leaving if it is being removed."""

    def edit(doc: dict[str, Any]) -> bool:
        if doc.get("job") != job_key or doc.get("attempt") != attempt:
            return False  # held by someone else by now: not ours to free
        doc.update(job=None, jobPk=None, since=stamp(now))
        if doc["state"] == RUNNING:  # a leaving node stays leaving, a restarted one preparing
            doc["state"] = IDLE
        return True

    return change(store, uid, node_id, edit) is not None


def set_state(store: StateStore, uid: str, node_id: str, state: str, now: datetime,
              error: dict[str, Any] | None = None) -> dict[str, Any] | None:
    def edit(doc: dict[str, Any]) -> bool:
        if doc["state"] == state and doc.get("error") == error:
            return False
        doc.update(state=state, since=stamp(now), error=error)
        return True

    return change(store, uid, node_id, edit)


def delete(store: StateStore, uid: str, node_id: str) -> None:
    try:
        store.delete(N, uid, node_key(uid, node_id))
    except NotFound:
        pass


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def credential_matches(doc: dict[str, Any], secret: str) -> bool:
    stored = doc.get("credential")
    return isinstance(stored, str) and bool(stored) and hmac.compare_digest(stored, hash_secret(secret))
