"""Node documents (shared/documents/nodes.py `NodeDocument`): one per node of a cluster, in the
"nodes" container, partitioned by the cluster's uid; their state is preparing | idle | running |
leaving | unusable, and `job`/`attempt` name the attempt that holds them.

A node is claimed for an attempt by an ETag-guarded write (invariant 3: one run per node), and only
the holder of the cluster's lease claims nodes (see leases.py), so gangs never interleave.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime

from shared.documents import base
from shared.documents.nodes import NodeDocument, NodeError, NodeState, node_key
from shared.ports.state_store import Conflict, NotFound, PreconditionFailed, Query, StateStore
from shared.resources import NODES
from shared.scheduler import IDLE, NODE_STATES, PREPARING, RUNNING, NodeView

N = NODES.name

__all__ = ["N", "NodeDocument", "node_key", "stamp", "parse_time", "list_docs", "view", "state_counts", "new_doc",
           "ensure", "read", "change", "claim", "release", "set_state", "delete", "hash_secret", "credential_matches"]


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def list_docs(store: StateStore, uid: str) -> list[NodeDocument]:
    return base.query(store, NodeDocument, Query(where={"pk": uid}, order_by=("id",)), pk=uid)


def read(store: StateStore, uid: str, node_id: str) -> NodeDocument | None:
    return base.read(store, NodeDocument, uid, node_key(uid, node_id))


def view(doc: NodeDocument) -> NodeView:
    return NodeView(node_id=doc.node_id, state=doc.state, job=doc.job, attempt=doc.attempt,
                    since=parse_time(doc.since))


def state_counts(docs: list[NodeDocument]) -> dict[str, int]:
    """Batch AI's nodeStateCounts."""
    counts = {state: 0 for state in NODE_STATES}
    for doc in docs:
        counts[doc.state] += 1
    return {f"{state}NodeCount": counts[state] for state in NODE_STATES}


def new_doc(uid: str, node_id: str, cluster_key: str, cluster_pk: str, address: str, now: datetime,
            state: NodeState = PREPARING) -> NodeDocument:
    return NodeDocument(id=node_key(uid, node_id), pk=uid, node_id=node_id, cluster=cluster_key,
                        cluster_pk=cluster_pk, address=address, state=state, since=stamp(now))


def ensure(store: StateStore, doc: NodeDocument) -> None:
    """Create the node's document unless it exists (the agent may have registered first)."""
    try:
        base.create(store, doc)
    except Conflict:
        pass


def change(store: StateStore, uid: str, node_id: str, edit: Callable[[NodeDocument], bool]) -> NodeDocument | None:
    """Apply `edit` under the node's ETag (it returns False to leave the node as it is).
    Returns the node as written, or None when it is gone or `edit` declined."""
    return base.edit(store, NodeDocument, uid, node_key(uid, node_id), edit)


def claim(store: StateStore, doc: NodeDocument, job_key: str, job_pk: str, attempt: int, now: datetime) -> bool:
    """Take a free node for one attempt, only if nobody changed it since `doc` was read."""
    taken = doc.model_copy(update={"state": RUNNING, "job": job_key, "job_pk": job_pk, "attempt": attempt,
                                   "since": stamp(now)})
    try:
        store.replace(N, taken.to_json(), etag=doc.etag)  # not base.replace: no model of the result is needed
        return True
    except (PreconditionFailed, NotFound):
        return False


def release(store: StateStore, uid: str, node_id: str, job_key: str, attempt: int, now: datetime) -> bool:
    """Give back a node the attempt held: idle again, or still leaving if it is being removed."""

    def edit(doc: NodeDocument) -> bool:
        if doc.job != job_key or doc.attempt != attempt:
            return False  # held by someone else by now: not ours to free
        doc.job, doc.job_pk, doc.since = None, None, stamp(now)
        if doc.state == RUNNING:  # a leaving node stays leaving, a restarted one preparing
            doc.state = IDLE
        return True

    return change(store, uid, node_id, edit) is not None


def set_state(store: StateStore, uid: str, node_id: str, state: NodeState, now: datetime,
              error: NodeError | None = None) -> NodeDocument | None:
    def edit(doc: NodeDocument) -> bool:
        if doc.state == state and doc.error == error:
            return False
        doc.state, doc.since, doc.error = state, stamp(now), error
        return True

    return change(store, uid, node_id, edit)


def delete(store: StateStore, uid: str, node_id: str) -> None:
    base.delete(store, NodeDocument, uid, node_key(uid, node_id))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def credential_matches(doc: NodeDocument, secret: str) -> bool:
    stored = doc.credential
    return bool(stored) and hmac.compare_digest(stored or "", hash_secret(secret))
