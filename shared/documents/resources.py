"""The "resources" container: one document per Batch AI resource, partitioned by subscription.

    id        store key (see ResourceRef.key)       kind       workspace | cluster | job | ...
    pk        subscription, lower-cased             parent     the parent's key (or "rg|<group>")
    workspace key of the owning workspace           resource   the resource exactly as reads return it
    spec      the create properties with secret values (never returned by a read)

Each kind adds its internal state as named fields (a job's attempt and nodes, a cluster's uid...).
`resource` is the wire answer, stored as it is returned; its typed parts are the ones the service
changes (states, times, errors), the rest is kept as the create made it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, PrivateAttr, field_serializer, model_validator

from shared.documents.base import Document, JsonObject, StoredModel, WireShaped, WireSpec
from shared.models.base import WireModel
from shared.models import ClusterBaseProperties, FileServerBaseProperties, JobBaseProperties
from shared.models.cluster import ManualScaleSettings, ScaleSettings
from shared.models.job_event import JobEvent
from shared.models.role_assignment import Role
from shared.sweeps.models import BestTrial, SweepProperties, Trial

RESOURCES = "resources"
DELETING = "deleting"


class ErrorEntry(WireShaped):
    """Batch AI's error: what failed, in words a user can act on."""

    code: str
    message: str
    details: list[NameValue] | None = None


class NameValue(WireShaped):
    name: str
    value: str


ErrorEntry.model_rebuild()


class ResourceIdRef(WireShaped):
    id: str


class ProvisionedProperties(WireShaped):
    """What every kind's properties carry about its life (service-written); the rest is kept as made."""

    creation_time: str | None = None
    provisioning_state: str | None = None
    provisioning_state_transition_time: str | None = None


class ArmResource(WireShaped):
    """The ARM envelope every resource is returned in."""

    id: str
    name: str
    type: str
    properties: ProvisionedProperties = Field(default_factory=ProvisionedProperties)


class ResourceDocument(Document):
    """Any kind's document, for what all kinds share (get, list, delete a tree)."""

    container: ClassVar[str] = RESOURCES

    kind: str
    parent: str
    workspace: str | None = None
    resource: ArmResource  # its `spec` (create properties) each kind types as its own

    @property
    def deleting(self) -> bool:
        return self.resource.properties.provisioning_state == DELETING

    def wire(self) -> JsonObject:
        """The resource as reads return it."""
        return self.resource.wire_json()

    @field_serializer("resource")
    def _resource_out(self, resource: ArmResource) -> JsonObject:
        return resource.wire_json()


class LazySpec(ResourceDocument):
    """A kind whose create properties (`spec`) are an API model, validated when first read: most
    writes of a job or cluster (every state change) never look at them, and validating and dumping
    them was most of the cost of a document. Written back as read unless the model was read (it may
    have been changed, as a cluster's PATCH changes its scale settings)."""

    spec_model: ClassVar[type[WireModel]]
    spec_changes: ClassVar[bool] = True  # False: never changed once created (written back as read)

    stored_spec: JsonObject = Field(alias="spec")  # the create properties as stored, secrets included
    _spec: WireModel | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _spec_as_json(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("spec"), WireModel):
            return {**data, "spec": data["spec"].to_wire(reveal_secrets=True)}
        return data

    def typed_spec(self) -> WireModel:
        if self._spec is None:
            self._spec = self.spec_model.model_validate(self.stored_spec, strict=False)
        return self._spec

    @field_serializer("stored_spec")
    def _spec_out(self, stored: JsonObject) -> JsonObject:
        return stored if self._spec is None or not self.spec_changes else self._spec.to_wire(reveal_secrets=True)


# --- jobs -------------------------------------------------------------------------------------------

class ExecutionInfo(WireShaped):
    start_time: str | None = None
    end_time: str | None = None
    exit_code: int | None = None
    errors: list[ErrorEntry] | None = None


class JobConstraints(WireShaped):
    max_wall_clock_time: str | None = None


class JobResourceProperties(ProvisionedProperties):
    cluster: ResourceIdRef | None = None
    node_count: int = 1
    scheduling_priority: str | None = None
    tool_type: str | None = None
    job_output_directory_path_segment: str | None = None
    execution_state: str | None = None
    execution_state_transition_time: str | None = None
    execution_info: ExecutionInfo | None = None
    constraints: JobConstraints | None = None


class JobResource(ArmResource):
    properties: JobResourceProperties


class AttemptEnd(StoredModel):
    """Why an attempt ended without an outcome (its node lost, the cluster resized)."""

    attempt: int
    code: str
    message: str


JobState = Literal["queued", "running", "terminating", "succeeded", "failed"]


class JobDocument(LazySpec):
    """A job: its wire resource, its create properties, and its run (shared/job_runs.py)."""

    spec_model: ClassVar[type[WireModel]] = JobBaseProperties
    spec_changes: ClassVar[bool] = False

    kind: Literal["job"] = "job"
    resource: JobResource
    cluster: str  # the cluster's store key
    cluster_pk: str
    cluster_uid: str  # names its lanes and nodes' partition
    state: JobState
    priority: str
    attempt: int = 0  # raised by every start (invariant 3)
    nodes: list[str] = Field(default_factory=list)  # the attempt's nodes, first is the master
    reports: dict[str, int] = Field(default_factory=dict)  # node -> exit code, this attempt
    prepared: list[str] = Field(default_factory=list)  # nodes that ran the job preparation
    stopped: list[str] = Field(default_factory=list)  # nodes that stopped a terminating attempt
    history: list[AttemptEnd] = Field(default_factory=list)
    retries: int = 0  # node failures spent from the retry budget
    trace_context: dict[str, str] = Field(default_factory=dict)  # the create call's trace
    attempt_trace_context: dict[str, str] | None = None  # the dispatch's trace, for the agents
    submission_id: str | None = None  # the queue message that made it (shared/submissions.py)
    event_seq: int | None = None  # how many events it has recorded (None: not even its creation)
    outbox: list[JobEvent] = Field(default_factory=list)  # events recorded, not yet sent
    outbox_pending: bool | None = None  # True while the outbox holds any (the outbox timer's lookup)
    event_history: list[JobEvent] = Field(default_factory=list)  # the last events, for GET .../events

    @property
    def props(self) -> JobResourceProperties:
        return self.resource.properties

    @property
    def spec(self) -> JobBaseProperties:
        spec = self.typed_spec()
        assert isinstance(spec, JobBaseProperties)
        return spec

    def copy_for_edit(self) -> Self:
        """A copy to change, made without the JSON round trip (ten times cheaper, on every
        transition): the spec (never changed once created) and the recorded events and attempt ends
        (never changed once written) are shared; the lists and maps are copied, and of the resource
        what a transition sets (its properties' fields and the execution info's: set, never changed
        in place) is copied one level deep."""
        props = self.resource.properties
        info = props.execution_info
        resource = self.resource.model_copy(update={"properties": props.model_copy(update={
            "execution_info": info.model_copy() if info is not None else None})})
        return self.model_copy(update={
            "resource": resource,
            "nodes": list(self.nodes), "reports": dict(self.reports), "prepared": list(self.prepared),
            "stopped": list(self.stopped), "history": list(self.history), "trace_context": dict(self.trace_context),
            "attempt_trace_context": dict(self.attempt_trace_context) if self.attempt_trace_context is not None
            else None,
            "outbox": list(self.outbox), "event_history": list(self.event_history)})

    def to_json(self) -> JsonObject:
        """As today's code stores a job: its internal fields left out while they are unset, and an
        outbox that was emptied removed (the outbox timer's lookup and readers see what they did)."""
        raw = super().to_json()
        for name in _UNSET_WHEN_NONE:
            if raw.get(name, 0) is None:
                del raw[name]
        if not raw.get("outbox", True):
            del raw["outbox"]
        return raw

    @property
    def node_count(self) -> int:
        return self.spec.node_count


_UNSET_WHEN_NONE = ("eventSeq", "outboxPending", "attemptTraceContext", "submissionId")


# --- clusters ---------------------------------------------------------------------------------------

class SetupTaskOutput(WireShaped):
    """Where a cluster's setup task writes (the service's part of the returned setupTask)."""

    std_out_err_path_suffix: str | None = None


class ReturnedNodeSetup(WireShaped):
    setup_task: SetupTaskOutput | None = None


class ClusterResourceProperties(ProvisionedProperties):
    vm_size: str | None = None
    allocation_state: str | None = None
    allocation_state_transition_time: str | None = None
    errors: list[ErrorEntry] | None = None
    node_setup: ReturnedNodeSetup | None = None
    scale_settings: Annotated[ScaleSettings, WireSpec] | None = None


class ClusterResource(ArmResource):
    properties: ClusterResourceProperties


class SshKeyPair(StoredModel):
    """The key pair a cluster's nodes trust one another with (mpirun); never returned."""

    private: str = ""
    public: str = ""


class ClusterDocument(LazySpec):
    spec_model: ClassVar[type[WireModel]] = ClusterBaseProperties

    kind: Literal["cluster"] = "cluster"
    resource: ClusterResource
    uid: str | None = None  # names its lanes and pool; new for every cluster ever made
    agent_token: str = ""  # lets its nodes join (never returned)
    provisioned: bool = False  # its lanes and pool exist
    ssh_key: SshKeyPair | None = None

    @property
    def props(self) -> ClusterResourceProperties:
        return self.resource.properties

    @property
    def spec(self) -> ClusterBaseProperties:
        spec = self.typed_spec()
        assert isinstance(spec, ClusterBaseProperties)
        return spec

    @property
    def cluster_uid(self) -> str:
        """Its own id, new for every cluster ever made: names its lanes, pool and nodes' partition
        (one made before uids existed: derived from its key, as shared/lanes.py does)."""
        return self.uid or hashlib.sha1(self.id.encode()).hexdigest()[:16]

    @property
    def scale(self) -> ScaleSettings:
        """Its scale settings (the create stores them always; none: a manual cluster of 0 nodes)."""
        return self.props.scale_settings or ScaleSettings(manual=ManualScaleSettings(target_node_count=0))


# --- the other kinds --------------------------------------------------------------------------------

class FileServerMountSettings(StoredModel):
    """Where nodes mount a ready file server (all three always written, as the port answers)."""

    mount_point: str
    file_server_public_ip: str = Field(alias="fileServerPublicIP")
    file_server_internal_ip: str = Field(alias="fileServerInternalIP")


class FileServerResourceProperties(ProvisionedProperties):
    mount_settings: FileServerMountSettings | None = None
    errors: list[ErrorEntry] | None = None


class FileServerResource(ArmResource):
    properties: FileServerResourceProperties


class FileServerDocument(ResourceDocument):
    kind: Literal["fileServer"] = "fileServer"
    resource: FileServerResource
    spec: Annotated[FileServerBaseProperties, WireSpec]
    uid: str | None = None


class DeadLetterRecord(StoredModel):
    """A delivery given up (shared/event_delivery.py), as GET .../deadLetters returns it (every field,
    statusCode null when no answer came)."""

    event_id: str
    event_type: str
    source: str
    attempts: int
    last_attempt_time: str
    reason: str
    status_code: int | None = None
    event: JsonObject  # the CloudEvent as it was published (any JSON its data holds)


class SubscriptionSecret(WireShaped):
    """What signs deliveries; never returned ({} when deliveries are not signed)."""

    secret: str | None = None


class WebhookDestinationPart(WireShaped):
    endpoint_url: str


class EventFilterPart(WireShaped):
    """Which events pass; an absent or empty list lets every value through."""

    experiments: list[str] | None = None
    event_types: list[str] | None = None

    def passes(self, event_type: str, experiment: str | None) -> bool:
        """Whether an event of `event_type` about `experiment` (None: a cluster's) goes through."""
        wanted = {e.lower() for e in self.experiments or []}
        types = set(self.event_types or [])
        return ((not wanted or (experiment is not None and experiment.lower() in wanted))
                and (not types or event_type in types))


class EventSubscriptionResourceProperties(ProvisionedProperties):
    destination: WebhookDestinationPart
    filter: EventFilterPart | None = None
    has_secret: bool | None = None


class EventSubscriptionResource(ArmResource):
    properties: EventSubscriptionResourceProperties


class EventSubscriptionDocument(ResourceDocument):
    kind: Literal["eventSubscription"] = "eventSubscription"
    resource: EventSubscriptionResource
    spec: SubscriptionSecret | None = None
    uid: str
    dead_letters: list[DeadLetterRecord] = Field(default_factory=list)

    @field_serializer("spec")
    def _spec_out(self, spec: SubscriptionSecret | None) -> JsonObject | None:
        return None if spec is None else spec.wire_json()


class SweepSpec(StoredModel):
    properties: Annotated[SweepProperties, WireSpec]
    files: dict[str, list[str]] = Field(default_factory=dict)


class SweepResourceProperties(ProvisionedProperties):
    """How far a sweep has come (beside its body as created, kept as made)."""

    execution_state: str | None = None
    execution_state_transition_time: str | None = None
    trial_counts: dict[str, int] | None = None
    best_trial: Annotated[BestTrial, WireSpec] | None = None


class SweepResource(ArmResource):
    properties: SweepResourceProperties


class SweepDocument(ResourceDocument):
    kind: Literal["sweep"] = "sweep"
    resource: SweepResource
    spec: SweepSpec
    state: str
    trials: list[Annotated[Trial, WireSpec]] = Field(default_factory=list)
    settling: bool | None = None
    cancel_requested: bool | None = None
    outbox: list[JsonObject] = Field(default_factory=list)  # CloudEvents of its own (shared/sweeps/driver.py)
    outbox_pending: bool | None = None


class WorkspaceResource(ArmResource):
    """The only resource with a location and tags."""

    location: str
    tags: dict[str, str] | None = None


class WorkspaceDocument(ResourceDocument):
    kind: Literal["workspace"] = "workspace"
    resource: WorkspaceResource
    spec: None = None  # a workspace keeps no create properties beyond its resource


class ExperimentDocument(ResourceDocument):
    kind: Literal["experiment"] = "experiment"
    spec: None = None  # an experiment keeps no create properties beyond its resource


class RoleAssignmentResourceProperties(ProvisionedProperties):
    principal_id: str  # who holds the role (the token's oid)
    role: Role
    principal_name: str | None = None
    scope: str  # the workspace's or the subscription's id

    def given(self) -> JsonObject:
        """The properties a PUT gives (wire form), to compare with a repeated PUT's."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"creation_time", "provisioning_state", "provisioning_state_transition_time"})


class RoleAssignmentResource(ArmResource):
    properties: RoleAssignmentResourceProperties


class RoleAssignmentDocument(ResourceDocument):
    """A workspace's role assignment (subscription-wide ones: shared/documents/nodes.py's neighbour)."""

    kind: Literal["roleAssignment"] = "roleAssignment"
    resource: RoleAssignmentResource
    spec: JsonObject = Field(default_factory=dict)  # none kept: the resource says it all


class TeardownRecord(Document):
    """A file server whose removal is still under way (shared/file_servers.py)."""

    container: ClassVar[str] = RESOURCES
    kind: Literal["fileServerTeardown"] = "fileServerTeardown"
    parent: str = ""
    server_id: str


KINDS: dict[str, type[ResourceDocument]] = {
    "job": JobDocument, "cluster": ClusterDocument, "fileServer": FileServerDocument,
    "eventSubscription": EventSubscriptionDocument, "sweep": SweepDocument, "workspace": WorkspaceDocument,
    "experiment": ExperimentDocument, "roleAssignment": RoleAssignmentDocument,
}


def load_resource(raw: Mapping[str, Any]) -> ResourceDocument:
    """A stored resource as the model of its kind."""
    return KINDS.get(str(raw.get("kind")), ResourceDocument).load(raw)
