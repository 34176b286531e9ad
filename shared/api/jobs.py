"""Jobs: created queued on a cluster of their workspace; terminated, listed, their files listed."""

from __future__ import annotations

import uuid

from shared import dispatcher, errors, events, job_files, job_runs, lanes, nodes, resources, telemetry
from shared.api import clusters
from shared.api.generic import put_resource, refuse_changes, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, int_param, page_of, parse_body
from shared.composition import Services
from shared.documents.base import JsonObject, read
from shared.documents.resources import ClusterDocument, JobDocument, JobResource, JobResourceProperties
from shared.ids import CLUSTER, JOB, ResourceRef
from shared.models import JobBaseProperties, JobCreateParameters, tool_type_of
from shared.ports.messaging import EntityNotFound, MessagingError
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

    def build() -> JobDocument:
        cluster = cluster_of(svc, ref, params.cluster.id)
        check_worker_count(params, cluster.spec.vm_size)
        return new_job(svc, ref, params, cluster, req.headers.get(SUBMISSION_ID_HEADER))

    def reconcile(doc: JobDocument) -> bool:
        refuse_changes(JOB, doc.spec.to_wire(reveal_secrets=True), spec)
        return False

    return put_resource(svc, ref, JobDocument, build, reconcile, created=lambda job: enqueue_and_announce(svc, job))


def new_job(svc: Services, ref: ResourceRef, params: JobBaseProperties, cluster: ClusterDocument,
            submission: str | None) -> JobDocument:
    """A new job as its create writes it: queued, with its creation event in its outbox; or failed
    at once by the same write when its cluster can never hold it."""
    now = timestamp(svc.clock.now())
    public = params.to_wire()
    public["cluster"] = {"id": cluster.resource.id}
    properties = JobResourceProperties.model_validate(public | {
        "toolType": str(tool_type_of(params)),
        "jobOutputDirectoryPathSegment": output_segment(ref),
        "creationTime": now,
        "provisioningState": "succeeded",
        "provisioningStateTransitionTime": now,
        "executionState": job_runs.QUEUED,
        "executionStateTransitionTime": now,
    })
    job = JobDocument(
        id=ref.key, pk=ref.pk, parent=ref.parent_key, workspace=ref.workspace.key,
        resource=JobResource(id=ref.arm_id, name=ref.name, type=ref.kind.arm_type, properties=properties),
        spec=params, cluster=cluster.id, cluster_pk=cluster.pk, cluster_uid=cluster.cluster_uid,
        state=job_runs.QUEUED, priority=str(params.scheduling_priority),
        trace_context=telemetry.inject(),  # the create call's trace: every attempt continues it (never returned)
        submission_id=submission)  # made by a queue message (shared/submissions.py)
    events.record_creation(job)
    if too_small := cluster_too_small(cluster, params.node_count):  # failed by the same write that makes it
        before = job.model_copy()  # shallow: the change's events read only its state and attempt
        job_runs.fail(job, svc.clock.now(), "ClusterTooSmall", too_small)
        events.record_change(before, job)
    return job


def enqueue_and_announce(svc: Services, job: JobDocument) -> JobDocument:
    """A new job joins its lane and its creation event goes out, in one send; unless its cluster
    can never hold it: a transition then fails it, and sends the creation event with its own."""
    if job.state != job_runs.QUEUED:  # failed by its create (cluster_too_small)
        return _flushed(svc, job)
    cluster = read(svc.store, ClusterDocument, job.cluster_pk, job.cluster)
    if cluster is None:
        return job_runs.fail_job(svc, job, "ClusterNotFound", "The job's cluster no longer exists.") or _flushed(svc, job)
    if too_small := cluster_too_small(cluster, job.props.node_count):
        return job_runs.fail_job(svc, job, "ClusterTooSmall", too_small) or _flushed(svc, job)
    try:
        events.send_with(svc, job, [lanes.entries([job])])
    except MessagingError:  # the lane or the topic is missing or down: each on its own, as far as it goes
        try:
            lanes.publish_job(svc.messaging, job)
        except EntityNotFound:  # a cluster created a moment ago: its pool manager's first round makes the
            return _flushed(svc, job)  # lanes and publishes every queued job (it was signalled by the cluster's create)
        events.flush(svc, job)
    if dispatcher.could_act(svc, cluster):  # read after publishing: see could_act
        lanes.signal(svc.messaging, job.cluster, job.cluster_pk)
    return job


def _flushed(svc: Services, job: JobDocument) -> JobDocument:
    """The job, its outbox sent on its own (see events.flush)."""
    events.flush(svc, job)
    return job


def cluster_too_small(cluster: ClusterDocument, node_count: int) -> str | None:
    """Why the cluster can never hold a job of node_count nodes, or None when it can."""
    limit = largest_size(cluster.scale)
    if node_count > limit:
        return f"The job needs {node_count} nodes but its cluster can have at most {limit}."
    return None


def cluster_of(svc: Services, job: ResourceRef, cluster_id: str) -> ClusterDocument:
    """The job's cluster: it must exist in the job's own workspace."""
    target = "properties.cluster.id"
    cluster = ResourceRef.parse(cluster_id, CLUSTER)
    if cluster is None:
        raise errors.InvalidParameter(f"The cluster id '{cluster_id[:300]}' is not a Batch AI cluster resource id.",
                                      target=target)
    if cluster.workspace.key != job.workspace.key or cluster.pk != job.pk:
        raise errors.InvalidParameter(
            f"The cluster '{cluster.name}' must be in the job's workspace '{job.names[0]}'.", target=target)
    doc = resources.load(svc.store, cluster, ClusterDocument)
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
    job_runs.terminate_job(svc, resources.require(svc.store, ref, JobDocument))
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
    job = resources.require(svc.store, ref, JobDocument)
    known = {job_files.STDOUTERR} | {d.id for d in job.spec.output_directories or []}
    if output_id not in known:
        raise errors.InvalidParameter(
            f"The job has no output directory '{output_id[:64]}'; it has: {', '.join(sorted(known))}.",
            target="outputdirectoryid")
    try:
        entries = job_files.list_directory(svc, job, output_id, req.query.get("directory", ""),
                                           job_files.expiry(svc, minutes))
    except ValueError as exc:
        raise errors.InvalidParameter(str(exc), target="directory") from None
    except job_files.NotListable as exc:
        raise errors.Conflict(str(exc), target="outputdirectoryid", code="OutputDirectoryNotListable") from None
    return page_of([e.to_wire() for e in entries], req, max_results)


def list_remote_login(svc: Services, req: ApiRequest) -> ApiResponse:
    """The nodes the job runs on now (none while it is queued or after it ended)."""
    ref = route_ref(JOB, req)
    job = resources.require(svc.store, ref, JobDocument)
    uid = job.cluster_uid
    running = job.nodes if job.state in job_runs.ACTIVE else []
    held = [nodes.read(svc.store, uid, n) for n in running]
    return clusters.remote_logins(req, [n for n in held if n is not None])
