"""Resource kinds, ARM resource ids and the store keys derived from them.

ARM names are case-insensitive but keep the case they were created with, so store keys are
lower-cased while the resource keeps its original spelling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import InvalidParameter

PROVIDER = "Microsoft.BatchAI"
# The spec's patterns. Always matched whole (fullmatch): with re.match, "$" also matches before a final
# newline, and "ws\n" would be a second workspace beside "ws". The text stays "^...$" for the OpenAPI
# document, whose (ECMAScript) patterns know no "\Z".
NAME_PATTERN = re.compile(r"^[-\w_]{1,64}$")
RESOURCE_GROUP_PATTERN = re.compile(r"^[-\w._]{1,90}$")
# A subscription id is a GUID on Azure; locally any short word will do, but never "|" (it separates
# the store's keys), a space or a control character.
SUBSCRIPTION_PATTERN = re.compile(r"^[-\w.]{1,64}$")


@dataclass(frozen=True)
class Kind:
    """One type of Batch AI resource and where it hangs in the hierarchy."""

    name: str  # the store's "kind" field
    segment: str  # path segment in ARM ids
    arm_type: str  # the "type" field of the resource
    label: str  # for messages
    path_param: str  # route parameter that carries its name
    parent: Kind | None

    def chain(self) -> list[Kind]:
        """Kinds from the workspace down to this one."""
        return (self.parent.chain() if self.parent else []) + [self]


WORKSPACE = Kind("workspace", "workspaces", f"{PROVIDER}/Workspaces", "Workspace", "workspaceName", None)
CLUSTER = Kind("cluster", "clusters", f"{PROVIDER}/Clusters", "Cluster", "clusterName", WORKSPACE)
FILE_SERVER = Kind("fileServer", "fileServers", f"{PROVIDER}/FileServers", "File server", "fileServerName", WORKSPACE)
EXPERIMENT = Kind("experiment", "experiments", f"{PROVIDER}/Experiments", "Experiment", "experimentName", WORKSPACE)
JOB = Kind("job", "jobs", f"{PROVIDER}/Jobs", "Job", "jobName", EXPERIMENT)
# Beside Batch AI's kinds: webhooks for job events (shared/api/event_subscriptions.py).
EVENT_SUBSCRIPTION = Kind("eventSubscription", "eventSubscriptions", f"{PROVIDER}/EventSubscriptions",
                          "Event subscription", "eventSubscriptionName", WORKSPACE)
# Who may do what in a workspace (shared/api/role_assignments.py); subscription-wide ones live apart.
ROLE_ASSIGNMENT = Kind("roleAssignment", "roleAssignments", f"{PROVIDER}/RoleAssignments", "Role assignment",
                       "roleAssignmentName", WORKSPACE)
KINDS = (WORKSPACE, CLUSTER, FILE_SERVER, EXPERIMENT, JOB, EVENT_SUBSCRIPTION, ROLE_ASSIGNMENT)


@dataclass(frozen=True)
class ResourceRef:
    """Where a resource lives: subscription, resource group, and the names down its kind's chain."""

    subscription: str
    resource_group: str
    kind: Kind
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def pk(self) -> str:
        """Partition key: one partition per subscription keeps every list a single-partition query."""
        return self.subscription.lower()

    @property
    def key(self) -> str:
        """The store document id; '|' cannot appear in any name."""
        return "|".join((self.kind.name, self.resource_group, *self.names)).lower()

    @property
    def arm_id(self) -> str:
        path = "".join(f"/{k.segment}/{n}" for k, n in zip(self.kind.chain(), self.names, strict=True))
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/{PROVIDER}{path}"

    @property
    def parent(self) -> ResourceRef | None:
        if self.kind.parent is None:
            return None
        return ResourceRef(self.subscription, self.resource_group, self.kind.parent, self.names[:-1])

    @property
    def parent_key(self) -> str:
        """The "parent" field of the document: the parent's key, or the resource group for workspaces."""
        return self.parent.key if self.parent else resource_group_key(self.resource_group)

    @property
    def workspace(self) -> ResourceRef:
        return ResourceRef(self.subscription, self.resource_group, WORKSPACE, self.names[:1])

    def child(self, kind: Kind, name: str) -> ResourceRef:
        assert kind.parent == self.kind
        return ResourceRef(self.subscription, self.resource_group, kind, (*self.names, name))

    @classmethod
    def from_route(cls, kind: Kind, params: Mapping[str, str]) -> ResourceRef:
        """Build from route parameters, checking each name against the spec's pattern (400 names it)."""
        subscription = check_subscription(params["subscriptionId"])
        resource_group = check_resource_group(params["resourceGroupName"])
        names = tuple(check_name(k.path_param, params[k.path_param]) for k in kind.chain())
        return cls(subscription, resource_group, kind, names)

    @classmethod
    def parse(cls, arm_id: str, kind: Kind) -> ResourceRef | None:
        """Parse an ARM id of the given kind; tolerant of case and of 'workspace' for 'workspaces'
        (Batch AI's own examples spell it so). None when it is not such an id."""
        segments = [s for s in arm_id.split("/") if s]  # not stripped: "gpu\n" is not "gpu" (names match whole)
        pairs = dict(zip(segments[0::2], segments[1::2], strict=False))
        lowered = {k.lower(): v for k, v in pairs.items()}
        if "workspace" in lowered and "workspaces" not in lowered:
            lowered["workspaces"] = lowered.pop("workspace")
        wanted = ["subscriptions", "resourcegroups", "providers"] + [k.segment.lower() for k in kind.chain()]
        if len(segments) != 2 * len(wanted) or sorted(lowered) != sorted(wanted):
            return None
        if lowered["providers"].lower() != PROVIDER.lower():
            return None
        names = tuple(lowered[k.segment.lower()] for k in kind.chain())
        if not all(NAME_PATTERN.fullmatch(n) for n in names) or not RESOURCE_GROUP_PATTERN.fullmatch(
                lowered["resourcegroups"]) or not SUBSCRIPTION_PATTERN.fullmatch(lowered["subscriptions"]):
            return None
        return cls(lowered["subscriptions"], lowered["resourcegroups"], kind, names)


def resource_group_key(resource_group: str) -> str:
    return f"rg|{resource_group}".lower()


def check_subscription(value: str) -> str:
    if not SUBSCRIPTION_PATTERN.fullmatch(value or ""):
        raise InvalidParameter(f"The subscriptionId '{value[:80]}' is not valid: use 1 to 64 letters, digits, "
                               "'-', '.' or '_'.", target="subscriptionId")
    return value


def check_name(param: str, value: str) -> str:
    if not NAME_PATTERN.fullmatch(value or ""):
        raise InvalidParameter(
            f"The {param} '{value[:80]}' is not valid: use 1 to 64 letters, digits, '-' or '_'.", target=param
        )
    return value


def check_resource_group(value: str) -> str:
    if not RESOURCE_GROUP_PATTERN.fullmatch(value or ""):
        raise InvalidParameter(
            f"The resourceGroupName '{value[:100]}' is not valid: use 1 to 90 letters, digits, '-', '.' or '_'.",
            target="resourceGroupName",
        )
    return value
