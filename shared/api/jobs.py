"""Jobs: created queued on a cluster of their workspace; terminated, listed, their files listed."""

from __future__ import annotations

import uuid
from typing import Any

from shared import dispatcher, errors, events, job_files, job_runs, lanes, nodes, resources, telemetry
from shared.api import clusters
from shared.api.generic import put_resource_json, refuse_changes, route_ref, timestamp  # bridge
from shared.api.request import ApiRequest, ApiResponse, int_param, page_of, parse_body
from shared.composition import Services
from shared.documents.resources import ClusterDocument
from shared.ids import CLUSTER, JOB, ResourceRef
from shared.models import JobBaseProperties, JobCreateParameters, tool_type_of
from shared.ports.messaging import EntityNotFound
from shared.models.cluster import ScaleSettings
from shared.scheduler import largest_size
from shared.vm_sizes import lookup


# A job made by a queue message remembers the message's id, so a redelivery finds its job.
SUBMISSION_ID_HEADER = "x-batchai-submission-id"


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(JOB, req)
    params = parse_body(JobCreateParameters, req).properties
    check_registry_credentials(params)
    spec = params.to_wire(reveal_secrets=True)
    job_files.check_folder_paths(params)

    def build() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        cluster = cluster_of(svc, ref, spec["cluster"]["id"])
        check_worker_count(params, cluster["spec"]["vmSize"])
        now = timestamp(svc.clock.now())
        public = params.to_wire()
        public["cluster"] = {"id": cluster["resource"]["id"]}
        properties = public | {
            "toolType": str(tool_type_of(params)),
            "jobOutputDirectoryPathSegment": output_segment(ref),
            "creationTime": now,
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": now,
            "executionState": "queued",
            "executionStateTransitionTime": now,
        }
        extra = {"cluster": cluster["id"], "clusterPk": cluster["pk"], "clusterUid": lanes.cluster_uid(cluster),
                 "state": job_runs.QUEUED, "attempt": 0, "nodes": [], "priority": str(params.scheduling_priority),
                 # The create call's trace: every attempt of the job continues it (never returned).
                 "traceContext": telemetry.inject()}
        if submission := req.headers.get(SUBMISSION_ID_HEADER):  # made by a queue message (shared/submissions.py)
            extra["submissionId"] = submission
        resource = resources.envelope(ref, properties)
        fields = extra | events.creation_fields(resource)
        if too_small := cluster_too_small(cluster, params.node_count):  # failed by the same write that makes it
            job = {"resource": resource, **fields}
            before = {**job, "resource": {**resource, "properties": dict(properties)}}
            job_runs.fail(job, svc.clock.now(), "ClusterTooSmall", too_small)
            events.record_change(before, job)
            fields = {k: v for k, v in job.items() if k != "resource"}
        return resource, spec, fields

    def reconcile(doc: dict[str, Any]) -> None:
        refuse_changes(JOB, doc["spec"], spec)
        return None

    return put_resource_json(svc, ref, build, reconcile, created=lambda doc: enqueue_and_announce(svc, doc))  # bridge


def enqueue_and_announce(svc: Services, job: dict[str, Any]) -> dict[str, Any]:
    """A new job joins its lane, then its creation event goes out (unless a transition, such as
    failing a job its cluster can never hold, already sent it with its own)."""
    written = enqueue(svc, job)
    if written is job:
        events.flush(svc, job)
    return written


def cluster_too_small(cluster: dict[str, Any], node_count: int) -> str | None:
    """Why the cluster can never hold a job of node_count nodes, or None when it can."""
    limit = largest_size(ScaleSettings.model_validate(cluster["spec"]["scaleSettings"], strict=False))  # bridge
    if node_count > limit:
        return f"The job needs {node_count} nodes but its cluster can have at most {limit}."
    return None


def enqueue(svc: Services, job: dict[str, Any]) -> dict[str, Any]:
    """A new job joins its cluster's lane, unless the cluster can never hold it."""
    if job["state"] != job_runs.QUEUED:  # failed by its create (cluster_too_small)
        return job
    cluster = svc.store.read(resources.R, job["clusterPk"], job["cluster"])
    if cluster is None:
        return job_runs.fail_job(svc, job, "ClusterNotFound", "The job's cluster no longer exists.") or job
    if too_small := cluster_too_small(cluster, job["resource"]["properties"]["nodeCount"]):
        return job_runs.fail_job(svc, job, "ClusterTooSmall", too_small) or job
    try:
        lanes.publish_job(svc.messaging, job)
    except EntityNotFound:  # a cluster created a moment ago: its pool manager's first round makes the
        return job          # lanes and publishes every queued job (it was signalled by the cluster's create)
    if dispatcher.could_act(svc, ClusterDocument.load(cluster)):  # bridge; read after publishing: see could_act
        lanes.signal(svc.messaging, job["cluster"], job["clusterPk"])
    return job


def cluster_of(svc: Services, job: ResourceRef, cluster_id: str) -> dict[str, Any]:
    """The job's cluster: it must exist in the job's own workspace."""
    target = "properties.cluster.id"
    cluster = ResourceRef.parse(cluster_id, CLUSTER)
    if cluster is None:
        raise errors.InvalidParameter(f"The cluster id '{cluster_id[:300]}' is not a Batch AI cluster resource id.",
                                      target=target)
    if cluster.workspace.key != job.workspace.key or cluster.pk != job.pk:
        raise errors.InvalidParameter(
            f"The cluster '{cluster.name}' must be in the job's workspace '{job.names[0]}'.", target=target)
    doc = resources.load_json(svc.store, cluster)  # bridge
    if doc is None:
        raise errors.InvalidParameter(f"The cluster '{cluster.name}' was not found in workspace '{job.names[0]}'.",
                                      target=target)
    return doc


def check_registry_credentials(params: JobBaseProperties) -> None:
    """The node logs in to the image's registry with the password the job gives; this service reads
    no Key Vault secret, so a passwordSecretReference is refused here rather than failing on a node."""
    registry = params.container_settings.image_source_registry if params.container_settings else None
    if registry and registry.credentials and registry.credentials.password_secret_reference:
        raise errors.InvalidParameter(
            "This service does not read Key Vault secrets: give the registry's password in "
            "containerSettings.imageSourceRegistry.credentials.password (it is never returned).",
            target="properties.containerSettings.imageSourceRegistry.credentials.passwordSecretReference")


def check_worker_count(params: JobBaseProperties, vm_size: str) -> None:
    """TensorFlow workers: at most nodeCount x GPUs per VM (one per node on a VM without GPUs)."""
    tf = params.tensor_flow_settings
    if tf is None or tf.worker_count is None:
        return
    limit = params.node_count * max(lookup(vm_size).gpus, 1)
    if tf.worker_count > limit:
        raise errors.InvalidParameter(
            f"tensorFlowSettings.workerCount ({tf.worker_count}) must be at most nodeCount x GPUs per VM of "
            f"{vm_size} ({limit}).", target="properties.tensorFlowSettings.workerCount")


def output_segment(ref: ResourceRef) -> str:
    """Unique per job, so jobs never overwrite each other's outputs (ENVIRONMENT.md)."""
    workspace, experiment, job = ref.names
    return (f"{ref.subscription}/{ref.resource_group}/workspaces/{workspace}/experiments/{experiment}"
            f"/jobs/{job}/{uuid.uuid4()}")


def terminate(svc: Services, req: ApiRequest) -> ApiResponse:
    """Stop the job: a queued one fails at once with JobTerminated; a running one is `terminating`
    until every node has stopped its processes, then fails with JobTerminated."""
    ref = route_ref(JOB, req)
    job_runs.terminate_job(svc, resources.require_json(svc.store, ref))  # bridge
    return ApiResponse(200)


def list_output_files(svc: Services, req: ApiRequest) -> ApiResponse:
    """A job directory's files with download URLs, listed while the job runs and after."""
    ref = route_ref(JOB, req)
    output_id = req.query.get("outputdirectoryid")
    if not output_id:
        raise errors.InvalidParameter("The outputdirectoryid query parameter is required.",
                                      target="outputdirectoryid")
    minutes = int_param(req, "linkexpiryinminutes", 60, 5, 600)
    max_results = int_param(req, "maxresults", 1000, 1, 1000)
    doc = resources.require_json(svc.store, ref)  # bridge
    known = {job_files.STDOUTERR} | {d["id"] for d in doc["spec"].get("outputDirectories", [])}
    if output_id not in known:
        raise errors.InvalidParameter(
            f"The job has no output directory '{output_id[:64]}'; it has: {', '.join(sorted(known))}.",
            target="outputdirectoryid")
    try:
        entries = job_files.list_directory(svc, doc, output_id, req.query.get("directory", ""),
                                           job_files.expiry(svc, minutes))
    except ValueError as exc:
        raise errors.InvalidParameter(str(exc), target="directory") from None
    except job_files.NotListable as exc:
        raise errors.Conflict(str(exc), target="outputdirectoryid", code="OutputDirectoryNotListable") from None
    return page_of([e.to_wire() for e in entries], req, max_results)


def list_remote_login(svc: Services, req: ApiRequest) -> ApiResponse:
    """The nodes the job runs on now (none while it is queued or after it ended)."""
    ref = route_ref(JOB, req)
    doc = resources.require_json(svc.store, ref)  # bridge
    uid = doc["clusterUid"]
    running = doc.get("nodes") or [] if doc["state"] in job_runs.ACTIVE else []
    held = [nodes.read(svc.store, uid, n) for n in running]
    return clusters.remote_logins(req, [n for n in held if n is not None])
