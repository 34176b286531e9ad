"""The node agents' API (routes under agent/, shared/api/agent.py): every message between the control
plane and a node's agent (node_bootstrap/agent.py), typed once for both ends.

A node's messages follow the API models' rules (``WireModel``: wire names, nothing coerced, unknown
fields refused, every string bounded): a node is trusted with its own node and attempt only. The
control plane's answers (``AgentAnswer``) ignore fields they do not name, so that an agent installed
on a VM before the control plane was upgraded still reads them; they are read with ``context=REDACTED``
(``read``), as every answer of the service is: rules made stricter since a job was created never make
its assignment unreadable. Answers carrying secrets (a job's secret values, registry passwords,
volume keys) are dumped with ``to_wire(reveal_secrets=True)``: they only ever go to the node that
runs the job or belongs to the cluster.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field

from shared.models.base import SecretWireModel, WireModel
from shared.models.cluster import SetupTask
from shared.models.common import REDACTED
from shared.models.job import JobBaseProperties
from shared.volumes import Volume

NODE_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
CODE_LIMIT, MESSAGE_LIMIT = 100, 4000  # what a node's error may hold


class AgentAnswer(WireModel):
    """An answer of the control plane to an agent."""

    model_config = ConfigDict(extra="ignore", str_max_length=None)  # written by the service

    @classmethod
    def read(cls, body: bytes | str) -> Self:
        """An answer's JSON body as the agent receives it."""
        return cls.model_validate_json(body, context=REDACTED)


# -- what a node says ----------------------------------------------------------------------------------

class Registration(SecretWireModel):
    """POST agent/register: a node trades the pool's bootstrap token for its own credential."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("token", "credential")

    cluster_id: str = Field(max_length=1000)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    address: str = Field(max_length=64)
    token: str = Field(max_length=200)
    # The agent's own secret, kept on its node: the first registration of a node id binds it, and a
    # later one (a restarted agent, a retry) is accepted only with the same (node_bootstrap/agent.py).
    credential: str = Field(min_length=32, max_length=200)


class Problem(WireModel):
    """Why a node's setup or its part of an attempt failed, as the cluster's or job's errors show it."""

    code: str = Field(max_length=CODE_LIMIT)
    message: str = Field(max_length=MESSAGE_LIMIT)

    @classmethod
    def of(cls, code: str, message: str) -> Problem:
        """Cut to what the agent API takes: a node's failure is always reported, however long its words."""
        return cls(code=code[:CODE_LIMIT], message=message[:MESSAGE_LIMIT])


class Ready(WireModel):
    """POST agent/ready: the node's setup is done; with an error, the node is unusable."""

    error: Problem | None = None


class AttemptRef(WireModel):
    """One attempt of a job, as a node names it (POST agent/prepared; GET agent/prepared's query)."""

    job: str = Field(max_length=1000)
    attempt: int = Field(ge=1)

    @property
    def running(self) -> str:
        """GET agent/assignment's `running=<job>#<attempt>`."""
        return f"{self.job}#{self.attempt}"


class Prepared(AttemptRef):
    """POST agent/prepared: this node ran the job's preparation."""


class Report(AttemptRef):
    """POST agent/report: the node's part of the attempt ended (or, `stopped`, was stopped on the
    control plane's word)."""

    exit_code: int
    error: Problem | None = None
    stopped: bool = False


class HeldAttempt(WireModel):
    """The attempt an agent holds, and whether it still works toward its report."""

    job: str = Field(max_length=1000)
    attempt: int = Field(ge=1)
    live: bool


class Work(WireModel):
    """POST agent/heartbeat: what the agent runs. `idle_seconds` is how long it has had no live work
    at all (a duration measured by the node: no clock skew); None from an agent that does not say."""

    running: HeldAttempt | None = None
    idle_seconds: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)

    def lacks(self, job: str, attempt: int) -> bool:
        """The agent has no live work for this attempt."""
        held = self.running
        return held is None or (held.job, held.attempt) != (job, attempt) or not held.live


# -- what the control plane answers ------------------------------------------------------------------

class Registered(SecretWireModel, AgentAnswer):
    """agent/register's answer: the node's key and credential, and how often it beats."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("credential",)

    node: str
    credential: str
    heartbeat_seconds: float = 2.0


class NodeStateAnswer(AgentAnswer):
    """agent/ready's, agent/evicting's and agent/heartbeat's answer: the node's state."""

    state: str


class Accepted(AgentAnswer):
    """agent/prepared's and agent/report's answer."""

    accepted: bool = True


class AllPrepared(AgentAnswer):
    """GET agent/prepared's answer (the master's long-poll): who has prepared, and whether all have."""

    prepared: list[str]
    all_prepared: bool = Field(alias="all")


class StorageBlobs(AgentAnswer):
    """Where a local pool's blob containers live: a folder blob store, or Azure Blob Storage (Azurite)."""

    kind: Literal["folder", "azure"]
    root: str | None = None  # folder
    endpoint: str | None = None  # azure: the account URL template


class StorageInfo(AgentAnswer):
    """How a node reaches storage: real mounts on VMs; in the local pool, folders of the data folder."""

    mode: Literal["local", "vm"] = "vm"
    storage_dir: str | None = None
    blobs: StorageBlobs | None = None


class MountableVolume(SecretWireModel, AgentAnswer):
    """A volume resolved for mounting (shared/volumes.py's `Volume`, key included). The kind is not
    judged here: a volume the node cannot mount is that volume's mount failure, not an unreadable answer."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("key",)

    kind: str
    relative_mount_path: str
    account: str | None = None
    key: str | None = None
    share: str | None = None
    share_url: str | None = None
    container: str | None = None
    server: str | None = None
    server_address: str | None = None
    export_path: str | None = None
    source_directory: str | None = None
    mount_options: str | None = None
    mount_command: str | None = None
    file_mode: str | None = None
    directory_mode: str | None = None
    problem: str | None = None

    @classmethod
    def of(cls, volume: Volume) -> MountableVolume:
        return cls.model_validate(volume.to_wire())

    def volume(self) -> Volume:
        """The volume to mount; ValueError for a kind this node does not know."""
        return Volume(**{name: value for name, value in self if value is not None})


class NodeSetupAnswer(AgentAnswer):
    """GET agent/setup's answer: what the node does before it takes work (the cluster's volumes and
    setup task, with its secrets), and where local storage lives."""

    node_id: str
    setup_task: SetupTask | None = None  # with its stdOutErrPathSuffix
    storage: StorageInfo = Field(default_factory=StorageInfo)
    volumes: list[MountableVolume] = Field(default_factory=list)


class AssignedNode(AgentAnswer):
    node_id: str
    address: str


class Assignment(AgentAnswer):
    """An attempt for this node to run: the job's settings with their secret values (only ever sent
    to the job's own nodes), its nodes in order (the first is the master) and its volumes."""

    job: str  # the job's store key
    job_id: str  # its resource id
    attempt: int
    master: bool
    nodes: list[AssignedNode]
    properties: JobBaseProperties
    job_output_directory_path_segment: str
    volumes: list[MountableVolume] = Field(default_factory=list)
    # The trace the node's spans continue: the dispatch that placed this attempt (else the create call).
    trace_context: dict[str, str] = Field(default_factory=dict)

    @property
    def ref(self) -> AttemptRef:
        return AttemptRef(job=self.job, attempt=self.attempt)

    @property
    def seed(self) -> str:
        """Unique per attempt (the segment holds a uuid per job: a job made again never reuses old ports)."""
        return f"{self.job_output_directory_path_segment}#{self.attempt}"

    def secret_values(self) -> list[str]:
        """The secret values this node was given for the job: its secrets, its registry password and
        its volumes' keys (none of them may appear in an error the job shows)."""
        values = [s.value for s in self.properties.secrets or () if s.value]
        container = self.properties.container_settings
        credentials = container.image_source_registry.credentials if container else None
        if credentials is not None and credentials.password:
            values.append(credentials.password)
        return values + [v.key for v in self.volumes if v.key]


class AssignmentAnswer(AgentAnswer):
    """GET agent/assignment's answer (a long-poll): the node's state, and the attempt it should run
    now, or none ("nothing": stop whatever runs)."""

    state: str
    assignment: Assignment | None = None

    def to_wire(self, *, reveal_secrets: bool = False) -> dict[str, Any]:  # the JSON body, as WireModel's
        data = super().to_wire(reveal_secrets=reveal_secrets)
        data.setdefault("assignment", None)  # "nothing" is said, not left out
        return data
