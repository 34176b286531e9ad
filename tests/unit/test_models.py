"""The API models (``shared.models``) hold to the Batch AI 2018-05-01 spec (``BatchAI.json``).

Checks, each driven by a table:
* the spec itself, walked: every definition's wire names, required members, enums and defaults;
* request bodies that must be accepted, and bodies that must be refused with a message naming the
  offending wire field (spec rules, ranges, and the cross-field rules the spec states in prose);
* toolType derived from the one toolkit; durations; PATCH of scale settings;
* secrets: accepted, absent from every dump, present only with ``reveal_secrets``;
* every request and answer body of the spec's examples.

Bodies are validated from JSON text, as the API does (``shared.api.request.parse_body``).
"""

from __future__ import annotations

import enum
import json
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake

import shared.models as models
from shared.models import (
    REDACTED,
    TOOLKITS,
    AutoScaleSettings,
    Cluster,
    ClusterCreateParameters,
    ClusterUpdateParameters,
    FileServerCreateParameters,
    Job,
    JobBaseProperties,
    JobBasePropertiesConstraints,
    JobCreateParameters,
    JobProperties,
    JobPropertiesExecutionInfo,
    ScaleSettingsPatch,
    ToolType,
    WorkspaceCreateParameters,
    WorkspaceUpdateParameters,
    format_duration,
    parse_duration,
    tool_type_of,
)
from shared.models.operation import OperationDisplay
from tests.spec_examples import with_real_names

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared/reference/batchai-2018-05-01"
SPEC = json.loads((SPEC_DIR / "BatchAI.json").read_text())
DEFINITIONS: dict[str, Any] = SPEC["definitions"]

# --------------------------------------------------------------------------------------------------
# Builders: the smallest valid bodies; keyword arguments (wire names) replace members, None drops one
# --------------------------------------------------------------------------------------------------

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
CLUSTER_ID = {"id": f"{SUB}/providers/Microsoft.BatchAI/workspaces/ws/clusters/c1"}
FILE_SERVER_ID = {"id": f"{SUB}/providers/Microsoft.BatchAI/workspaces/ws/fileServers/nfs"}
KEY_VAULT_REF = {"sourceVault": {"id": f"{SUB}/providers/Microsoft.KeyVault/vaults/kv"},
                 "secretUrl": "https://kv.vault.azure.net/secrets/s/1"}
IMAGE_ID = f"{SUB}/providers/Microsoft.Compute/images/my-image"


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in {**base, **changes}.items() if value is not None}


def job(**changes: Any) -> dict[str, Any]:
    """PUT body of a job; by default a one-node custom toolkit job."""
    return {"properties": merged({"cluster": CLUSTER_ID, "nodeCount": 1,
                                  "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
                                  "customToolkitSettings": {"commandLine": "echo hi"}}, changes)}


def toolkit_job(toolkit: str, settings: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A job whose one toolkit is `toolkit` (a wire name such as "tensorFlowSettings")."""
    return job(**{"customToolkitSettings": None, toolkit: settings}, **changes)


def cntk(**settings: Any) -> dict[str, Any]:
    return toolkit_job("cntkSettings", settings)


def caffe(**settings: Any) -> dict[str, Any]:
    return toolkit_job("caffeSettings", settings)


def tensorflow(node_count: int = 2, **settings: Any) -> dict[str, Any]:
    return toolkit_job("tensorFlowSettings", {"pythonScriptFilePath": "train.py", **settings}, nodeCount=node_count)


def azure_file_share(**changes: Any) -> dict[str, Any]:
    return merged({"accountName": "acct", "azureFileUrl": "https://acct.file.core.windows.net/share",
                   "credentials": {"accountKey": "S3CRET-KEY=="}, "relativeMountPath": "afs"}, changes)


def blob_file_system(**changes: Any) -> dict[str, Any]:
    return merged({"accountName": "acct", "containerName": "data", "credentials": {"accountKey": "S3CRET-KEY=="},
                   "relativeMountPath": "blob"}, changes)


def secret(**changes: Any) -> dict[str, Any]:
    return merged({"name": "TOKEN", "value": "S3CRET"}, changes)


def registry(**credentials: Any) -> dict[str, Any]:
    """Job containerSettings pulling from a private registry."""
    return {"imageSourceRegistry": {"serverUrl": "https://my.azurecr.io", "image": "my.azurecr.io/train:1",
                                    "credentials": merged({"username": "me", "password": "S3CRET"}, credentials)}}


def cluster(**changes: Any) -> dict[str, Any]:
    """PUT body of a cluster; by default one dedicated node, manual scale."""
    return {"properties": merged({"vmSize": "STANDARD_NC6", "userAccountSettings": {"adminUserName": "admin"},
                                  "scaleSettings": {"manual": {"targetNodeCount": 1}}}, changes)}


def autoscale(**settings: Any) -> dict[str, Any]:
    return cluster(scaleSettings={"autoScale": merged({"minimumNodeCount": 0, "maximumNodeCount": 4}, settings)})


def manual(**settings: Any) -> dict[str, Any]:
    return cluster(scaleSettings={"manual": merged({"targetNodeCount": 1}, settings)})


def setup_task(**changes: Any) -> dict[str, Any]:
    return cluster(nodeSetup={"setupTask": merged({"commandLine": "apt-get install -y foo",
                                                   "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs"}, changes)})


def app_insights(**changes: Any) -> dict[str, Any]:
    reference = merged({"component": {"id": f"{SUB}/providers/Microsoft.Insights/components/ai"},
                        "instrumentationKey": "S3CRET-IKEY"}, changes)
    return cluster(nodeSetup={"performanceCountersSettings": {"appInsightsReference": reference}})


def image(**changes: Any) -> dict[str, Any]:
    reference = merged({"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS"}, changes)
    return cluster(virtualMachineConfiguration={"imageReference": reference})


def file_server(**changes: Any) -> dict[str, Any]:
    """PUT body of a file server; by default two standard disks."""
    return {"properties": merged({"vmSize": "STANDARD_D2_V2",
                                  "sshConfiguration": {"userAccountSettings": {"adminUserName": "admin",
                                                                               "adminUserPassword": "S3CRET"}},
                                  "dataDisks": {"diskSizeInGB": 10, "diskCount": 2,
                                                "storageAccountType": "Standard_LRS"}}, changes)}


def disks(**changes: Any) -> dict[str, Any]:
    return file_server(dataDisks=merged({"diskSizeInGB": 10, "diskCount": 2, "storageAccountType": "Standard_LRS"},
                                        changes))


def parse(model: type[BaseModel], body: Any, context: dict[str, Any] | None = None) -> Any:
    """Validate a wire body the way the API does: from JSON text."""
    return model.model_validate_json(json.dumps(body), context=context)


def problems(model: type[BaseModel], body: Any) -> str:
    """The validation errors of a body that must be refused, as 'loc: message' lines."""
    with pytest.raises(ValidationError) as caught:
        parse(model, body)
    return "\n".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in caught.value.errors())


def at(document: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def is_within(part: Any, whole: Any) -> bool:
    """Whether every member of `part` is in `whole` with the same value (extra members allowed)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and is_within(v, whole[k]) for k, v in part.items())
    if isinstance(part, list):
        return isinstance(whole, list) and len(part) == len(whole) and all(map(is_within, part, whole))
    return part == whole


def without(document: Any, names: set[str]) -> Any:
    """The document with the members of those names removed, at any depth."""
    if isinstance(document, dict):
        return {k: without(v, names) for k, v in document.items() if k not in names}
    if isinstance(document, list):
        return [without(v, names) for v in document]
    return document


# --------------------------------------------------------------------------------------------------
# The spec, walked: wire names, required members, enums, defaults of every definition
# --------------------------------------------------------------------------------------------------

# Inline object schemas of the spec and the models that mirror them.
INLINE_SCHEMAS = {
    "JobBaseProperties.constraints": JobBasePropertiesConstraints,
    "JobProperties.constraints": JobBasePropertiesConstraints,
    "JobProperties.executionInfo": JobPropertiesExecutionInfo,
    "Operation.display": OperationDisplay,
}

# Where the models knowingly differ from the letter of the spec, and why.
MORE_REQUIRED = {
    # `properties` is optional in the spec, but it has required members itself: a body without it can
    # never be valid, and requiring it gives the precise error.
    "ClusterCreateParameters": {"properties"},
    "FileServerCreateParameters": {"properties"},
    "JobCreateParameters": {"properties"},
}
MORE_ENUM_VALUES = {
    # JobProperties.toolType documents "pytorch", which the ToolType enum forgets.
    "ToolType": {"pytorch"},
}


def ref_name(schema: dict[str, Any]) -> str:
    return schema["$ref"].rsplit("/", 1)[1]


def resolved(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with the definition it refers to (if any) filled in."""
    return {**DEFINITIONS[ref_name(prop)], **prop} if "$ref" in prop else prop


def spec_properties(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for parent in schema.get("allOf", []):
        found |= spec_properties(DEFINITIONS[ref_name(parent)])
    return found | schema.get("properties", {})


def spec_required(schema: dict[str, Any]) -> set[str]:
    found = set(schema.get("required", []))
    for parent in schema.get("allOf", []):
        found |= spec_required(DEFINITIONS[ref_name(parent)])
    return found


def object_schemas() -> list[tuple[str, dict[str, Any], type[BaseModel]]]:
    """(spec name, schema, model) for every object definition and inline object of the spec."""
    found = [(name, schema, getattr(models, name)) for name, schema in DEFINITIONS.items() if "enum" not in schema]
    for name, model in INLINE_SCHEMAS.items():
        definition, member = name.split(".")
        found.append((name, DEFINITIONS[definition]["properties"][member], model))
    return found


def wire_fields(model: type[BaseModel]) -> dict[str, Any]:
    return {field.alias or name: field for name, field in model.model_fields.items()}


def enum_in(annotation: Any) -> type[enum.Enum] | None:
    """The enum class inside an annotation such as `JobPriority | None`."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    return next(filter(None, map(enum_in, typing.get_args(annotation))), None)


def spec_enums() -> list[tuple[str, list[str], type[enum.Enum]]]:
    """(where, spec values, model enum) for every enum of the spec, by definition or inline."""
    found = []
    for where, schema, model in object_schemas():
        fields = wire_fields(model)
        for member, prop in spec_properties(schema).items():
            if values := resolved(prop).get("enum"):
                found.append((f"{where}.{member}", values, enum_in(fields[member].annotation)))
    return found


def spec_defaults() -> list[tuple[str, Any, Any]]:
    """(where, spec default, model field) for every default of a property the spec gives."""
    found = []
    for where, schema, model in object_schemas():
        fields = wire_fields(model)
        for member, prop in spec_properties(schema).items():
            if (default := resolved(prop).get("default")) is not None:
                found.append((f"{where}.{member}", default, fields[member]))
    return found


@pytest.mark.parametrize(("where", "schema", "model"), object_schemas(), ids=[o[0] for o in object_schemas()])
def test_model_has_the_spec_wire_names_and_required_members(where: str, schema: dict[str, Any],
                                                            model: type[BaseModel]) -> None:
    fields = wire_fields(model)
    assert set(fields) == set(spec_properties(schema))
    required = {name for name, field in fields.items() if field.is_required()}
    assert required == spec_required(schema) | MORE_REQUIRED.get(where, set())


@pytest.mark.parametrize(("where", "values", "model_enum"), spec_enums(), ids=[e[0] for e in spec_enums()])
def test_model_enum_has_the_spec_values(where: str, values: list[str], model_enum: type[enum.Enum] | None) -> None:
    assert model_enum is not None, f"{where} is an enum in the spec but not in the model"
    assert {member.value for member in model_enum} == set(values) | MORE_ENUM_VALUES.get(model_enum.__name__, set())


def test_tool_type_enum_documents_pytorch() -> None:
    # The one deliberate extra value: JobProperties.toolType names it, the enum forgets it.
    assert "pytorch" in DEFINITIONS["JobProperties"]["properties"]["toolType"]["description"]
    assert "pytorch" not in DEFINITIONS["ToolType"]["enum"]


def test_the_spec_walk_finds_every_default() -> None:
    assert {where for where, _, _ in spec_defaults()} == {
        "JobBaseProperties.schedulingPriority", "JobProperties.schedulingPriority",
        "JobBaseProperties.constraints.maxWallClockTime", "JobProperties.constraints.maxWallClockTime",
        "ClusterBaseProperties.vmPriority", "ClusterProperties.vmPriority",
        "ManualScaleSettings.nodeDeallocationOption", "ManualScaleSettings.targetNodeCount",
        "AutoScaleSettings.initialNodeCount", "DataDisks.cachingType",
        "AzureFileShareReference.fileMode", "AzureFileShareReference.directoryMode",
    }


@pytest.mark.parametrize(("where", "default", "field"), spec_defaults(), ids=[d[0] for d in spec_defaults()])
def test_model_applies_the_spec_default(where: str, default: Any, field: Any) -> None:
    if where == "ManualScaleSettings.targetNodeCount":
        # The spec makes it both required and defaulted to 0; required wins (no silent empty cluster).
        assert field.is_required()
        return
    value = field.get_default(call_default_factory=True)
    if where.endswith(".maxWallClockTime"):
        assert value == parse_duration(default) == timedelta(days=7)
        return
    assert value == default


# --------------------------------------------------------------------------------------------------
# Defaults as they appear on the wire of a minimal body
# --------------------------------------------------------------------------------------------------

DEFAULTS_ON_THE_WIRE = [
    ("schedulingPriority normal", JobCreateParameters, job(), ("properties", "schedulingPriority"), "normal"),
    # The spec's default is "7.00:00:00"; it is written as ISO 8601, the spec's `format: duration`, because
    # that is what the spec's own examples show and what azure-mgmt-batchai (msrest/isodate) can read.
    ("maxWallClockTime 7 days", JobCreateParameters, job(), ("properties", "constraints", "maxWallClockTime"), "P7D"),
    ("maxWallClockTime with empty constraints", JobCreateParameters, job(constraints={}),
     ("properties", "constraints", "maxWallClockTime"), "P7D"),
    ("vmPriority dedicated", ClusterCreateParameters, cluster(), ("properties", "vmPriority"), "dedicated"),
    ("nodeDeallocationOption requeue", ClusterCreateParameters, manual(),
     ("properties", "scaleSettings", "manual", "nodeDeallocationOption"), "requeue"),
    ("initialNodeCount 0", ClusterCreateParameters, autoscale(),
     ("properties", "scaleSettings", "autoScale", "initialNodeCount"), 0),
    ("fileMode 0777", JobCreateParameters, job(mountVolumes={"azureFileShares": [azure_file_share()]}),
     ("properties", "mountVolumes", "azureFileShares", 0, "fileMode"), "0777"),
    ("directoryMode 0777", JobCreateParameters, job(mountVolumes={"azureFileShares": [azure_file_share()]}),
     ("properties", "mountVolumes", "azureFileShares", 0, "directoryMode"), "0777"),
    ("cachingType none", FileServerCreateParameters, file_server(), ("properties", "dataDisks", "cachingType"), "none"),
    ("answer vmPriority dedicated", Cluster, {"properties": {}}, ("properties", "vmPriority"), "dedicated"),
    ("answer schedulingPriority normal", Job, {"properties": {}}, ("properties", "schedulingPriority"), "normal"),
]


@pytest.mark.parametrize(("model", "body", "path", "expected"), [row[1:] for row in DEFAULTS_ON_THE_WIRE],
                         ids=[row[0] for row in DEFAULTS_ON_THE_WIRE])
def test_default_is_written(model: type[BaseModel], body: Any, path: tuple[Any, ...], expected: Any) -> None:
    assert at(parse(model, body).to_wire(), path) == expected


def test_optional_members_left_out_are_not_written() -> None:
    # No invented values: what the user did not give (and has no spec default) stays absent.
    wire = parse(JobCreateParameters, job()).to_wire()["properties"]
    assert set(wire) == {"cluster", "nodeCount", "stdOutErrPathPrefix", "customToolkitSettings",
                         "schedulingPriority", "constraints"}


# --------------------------------------------------------------------------------------------------
# Accepted bodies
# --------------------------------------------------------------------------------------------------

ACCEPTED = [
    # jobs: every toolkit, alone
    ("custom toolkit", JobCreateParameters, job()),
    ("custom toolkit without commandLine", JobCreateParameters, job(customToolkitSettings={})),
    ("pytorch", JobCreateParameters, toolkit_job("pyTorchSettings", {"pythonScriptFilePath": "t.py",
                                                                      "communicationBackend": "Gloo"})),
    ("tensorflow single", JobCreateParameters, tensorflow(node_count=1)),
    ("tensorflow parameterServerCount == nodeCount", JobCreateParameters, tensorflow(2, parameterServerCount=2,
                                                                                     workerCount=2)),
    ("caffe config", JobCreateParameters, caffe(configFilePath="solver.prototxt")),
    ("caffe python", JobCreateParameters, caffe(pythonScriptFilePath="t.py", pythonInterpreterPath="/usr/bin/python")),
    ("caffe2", JobCreateParameters, toolkit_job("caffe2Settings", {"pythonScriptFilePath": "t.py"})),
    ("chainer", JobCreateParameters, toolkit_job("chainerSettings", {"pythonScriptFilePath": "t.py",
                                                                      "processCount": 2})),
    ("horovod", JobCreateParameters, toolkit_job("horovodSettings", {"pythonScriptFilePath": "t.py"})),
    ("custom mpi", JobCreateParameters, toolkit_job("customMpiSettings", {"commandLine": "hostname",
                                                                          "processCount": 4})),
    ("cntk default language, config", JobCreateParameters, cntk(configFilePath="cfg.bs")),
    ("cntk BrainScript", JobCreateParameters, cntk(languageType="BrainScript", configFilePath="cfg.bs")),
    ("cntk Python", JobCreateParameters, cntk(languageType="Python", pythonScriptFilePath="t.py",
                                              pythonInterpreterPath="/usr/bin/python3")),
    # jobs: the rest
    ("priority high", JobCreateParameters, job(schedulingPriority="high")),
    ("priority low", JobCreateParameters, job(schedulingPriority="low")),
    ("nodeCount at its bound", JobCreateParameters, job(nodeCount=1000)),
    ("maxWallClockTime .NET", JobCreateParameters, job(constraints={"maxWallClockTime": "1.02:03:04"})),
    ("maxWallClockTime ISO", JobCreateParameters, job(constraints={"maxWallClockTime": "PT90M"})),
    ("secret by value", JobCreateParameters, job(secrets=[secret()])),
    ("secret by Key Vault", JobCreateParameters, job(secrets=[secret(value=None, valueSecretReference=KEY_VAULT_REF)])),
    ("environment and secrets", JobCreateParameters, job(environmentVariables=[{"name": "A", "value": ""}],
                                                          secrets=[secret(name="B")])),
    ("directories", JobCreateParameters, job(
        inputDirectories=[{"id": "DATA", "path": "$AZ_BATCHAI_MOUNT_ROOT/d"}],
        outputDirectories=[{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/o", "pathSuffix": "models"}])),
    ("container, public image", JobCreateParameters, job(containerSettings={"imageSourceRegistry": {"image": "ubuntu"},
                                                                             "shmSize": "8g"})),
    ("container, registry password", JobCreateParameters, job(containerSettings=registry())),
    ("container, registry Key Vault", JobCreateParameters,
     job(containerSettings=registry(password=None, passwordSecretReference=KEY_VAULT_REF))),
    ("job preparation", JobCreateParameters, job(jobPreparation={"commandLine": "pip install x"})),
    ("all volume kinds", JobCreateParameters, job(mountVolumes={
        "azureFileShares": [azure_file_share(fileMode="0644", directoryMode="0755")],
        "azureBlobFileSystems": [blob_file_system(credentials={"accountKeySecretReference": KEY_VAULT_REF})],
        "fileServers": [{"fileServer": FILE_SERVER_ID, "relativeMountPath": "nfs", "sourceDirectory": "data"}],
        "unmanagedFileSystems": [{"mountCommand": "mount -t nfs 10.0.0.4:/x", "relativeMountPath": "ext"}]})),
    # clusters
    ("cluster manual", ClusterCreateParameters, manual(targetNodeCount=0,
                                                       nodeDeallocationOption="waitforjobcompletion")),
    ("cluster without scaleSettings", ClusterCreateParameters, cluster(scaleSettings=None)),
    ("cluster low priority", ClusterCreateParameters, cluster(vmPriority="lowpriority")),
    ("autoScale min <= initial <= max", ClusterCreateParameters, autoscale(minimumNodeCount=1, initialNodeCount=2,
                                                                           maximumNodeCount=3)),
    ("autoScale all equal", ClusterCreateParameters, autoscale(minimumNodeCount=2, initialNodeCount=2,
                                                               maximumNodeCount=2)),
    # An unset initialNodeCount (default 0) below the minimum means "start empty, grow to the minimum".
    ("autoScale default initial below min", ClusterCreateParameters, autoscale(minimumNodeCount=1)),
    ("marketplace image", ClusterCreateParameters, image(version="latest")),
    ("custom image", ClusterCreateParameters, image(virtualMachineImageId=IMAGE_ID)),
    ("setup task with secrets", ClusterCreateParameters,
     setup_task(secrets=[secret()], environmentVariables=[{"name": "X", "value": "1"}])),
    ("app insights key", ClusterCreateParameters, app_insights()),
    ("app insights Key Vault", ClusterCreateParameters,
     app_insights(instrumentationKey=None, instrumentationKeySecretReference=KEY_VAULT_REF)),
    ("cluster volumes", ClusterCreateParameters, cluster(nodeSetup={"mountVolumes": {
        "azureFileShares": [azure_file_share()], "azureBlobFileSystems": [blob_file_system()]}})),
    ("ssh key instead of password", ClusterCreateParameters,
     cluster(userAccountSettings={"adminUserName": "a", "adminUserSshPublicKey": "ssh-rsa AAAA"})),
    ("subnet", ClusterCreateParameters,
     cluster(subnet={"id": f"{SUB}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"})),
    ("patch to autoScale", ClusterUpdateParameters,
     {"properties": {"scaleSettings": {"autoScale": {"maximumNodeCount": 5}}}}),
    ("patch nothing", ClusterUpdateParameters, {}),
    # file servers
    ("file server", FileServerCreateParameters, file_server()),
    ("premium read-only disks", FileServerCreateParameters,
     disks(storageAccountType="Premium_LRS", cachingType="readonly")),
    ("400 ssh ranges", FileServerCreateParameters,
     file_server(sshConfiguration={"publicIPsToAllow": ["10.0.0.0/8"] * 400,
                                   "userAccountSettings": {"adminUserName": "a"}})),
    # workspaces
    ("workspace", WorkspaceCreateParameters, {"location": "eastus", "tags": {"team": "vision"}}),
    ("workspace tags", WorkspaceUpdateParameters, {"tags": {"k": "v"}}),
    ("workspace no change", WorkspaceUpdateParameters, {}),
]


@pytest.mark.parametrize(("model", "body"), [row[1:] for row in ACCEPTED], ids=[row[0] for row in ACCEPTED])
def test_valid_body_is_accepted_and_written_back(model: type[BaseModel], body: dict[str, Any]) -> None:
    # Durations come back in one form (see test_duration_*), everything else as it was given.
    assert is_within(without(body, {"maxWallClockTime"}), parse(model, body).to_wire(reveal_secrets=True))


# --------------------------------------------------------------------------------------------------
# Refused bodies: each names the wire fields at fault
# --------------------------------------------------------------------------------------------------

J, C, U, F, W, WU = (JobCreateParameters, ClusterCreateParameters, ClusterUpdateParameters, FileServerCreateParameters,
                     WorkspaceCreateParameters, WorkspaceUpdateParameters)

REFUSED: list[tuple[str, type[BaseModel], Any, list[str]]] = [
    # --- jobs: required members, types, ranges, enums
    ("job without properties", J, {}, ["properties"]),
    ("job without cluster", J, job(cluster=None), ["cluster"]),
    ("job cluster without id", J, job(cluster={}), ["cluster", "id"]),
    ("job without nodeCount", J, job(nodeCount=None), ["nodeCount"]),
    ("job without stdOutErrPathPrefix", J, job(stdOutErrPathPrefix=None), ["stdOutErrPathPrefix"]),
    ("empty stdOutErrPathPrefix", J, job(stdOutErrPathPrefix=""), ["stdOutErrPathPrefix"]),
    ("nodeCount 0", J, job(nodeCount=0), ["nodeCount"]),
    ("nodeCount negative", J, job(nodeCount=-1), ["nodeCount"]),
    ("nodeCount beyond int32", J, job(nodeCount=2**31), ["nodeCount"]),
    ("nodeCount as text", J, job(nodeCount="2"), ["nodeCount"]),
    ("nodeCount fractional", J, job(nodeCount=1.5), ["nodeCount"]),
    ("nodeCount boolean", J, job(nodeCount=True), ["nodeCount"]),
    ("schedulingPriority unknown", J, job(schedulingPriority="urgent"), ["schedulingPriority"]),
    ("schedulingPriority wrong case", J, job(schedulingPriority="High"), ["schedulingPriority"]),
    ("priority (the examples' slip)", J, job(priority="normal"), ["priority"]),
    ("toolType is never sent", J, job(toolType="custom"), ["toolType"]),
    ("read-only executionState", J, job(executionState="queued"), ["executionState"]),
    ("unknown member", J, job(nodeCont=2), ["nodeCont"]),
    # --- jobs: exactly one toolkit
    ("no toolkit", J, job(customToolkitSettings=None), ["customToolkitSettings", "pyTorchSettings", "got 0"]),
    ("two toolkits", J, job(pyTorchSettings={"pythonScriptFilePath": "t.py"}),
     ["pyTorchSettings", "customToolkitSettings", "got 2"]),
    # --- toolkit settings
    ("pytorch without script", J, toolkit_job("pyTorchSettings", {}), ["pyTorchSettings", "pythonScriptFilePath"]),
    ("pytorch backend unknown", J, toolkit_job("pyTorchSettings", {"pythonScriptFilePath": "t.py",
                                                                    "communicationBackend": "mpich"}),
     ["communicationBackend", "'Gloo'"]),
    ("tensorflow without script", J, toolkit_job("tensorFlowSettings", {}), ["pythonScriptFilePath"]),
    ("tensorflow parameterServerCount > nodeCount", J, tensorflow(2, parameterServerCount=3),
     ["parameterServerCount", "nodeCount"]),
    ("tensorflow parameterServerCount 0", J, tensorflow(2, parameterServerCount=0), ["parameterServerCount"]),
    ("tensorflow workerCount 0", J, tensorflow(2, workerCount=0), ["workerCount"]),
    ("caffe2 without script", J, toolkit_job("caffe2Settings", {}), ["caffe2Settings", "pythonScriptFilePath"]),
    ("chainer without script", J, toolkit_job("chainerSettings", {}), ["chainerSettings", "pythonScriptFilePath"]),
    ("horovod without script", J, toolkit_job("horovodSettings", {}), ["horovodSettings", "pythonScriptFilePath"]),
    ("horovod processCount 0", J, toolkit_job("horovodSettings", {"pythonScriptFilePath": "t.py", "processCount": 0}),
     ["processCount"]),
    ("custom mpi without commandLine", J, toolkit_job("customMpiSettings", {}), ["customMpiSettings", "commandLine"]),
    ("custom mpi processCount beyond int32", J, toolkit_job("customMpiSettings", {"commandLine": "x",
                                                                                   "processCount": 2**31}),
     ["processCount"]),
    ("cntk BrainScript with Python script", J, cntk(languageType="BrainScript", pythonScriptFilePath="t.py"),
     ["pythonScriptFilePath", "Python"]),
    ("cntk no language, a script and a config file", J, cntk(pythonScriptFilePath="t.py", configFilePath="c.bs"),
     ["pythonScriptFilePath"]),
    ("cntk BrainScript with interpreter", J, cntk(configFilePath="c.bs", pythonInterpreterPath="/usr/bin/python"),
     ["pythonInterpreterPath"]),
    ("cntk Python with config file", J, cntk(languageType="Python", pythonScriptFilePath="t.py", configFilePath="c.bs"),
     ["configFilePath", "BrainScript"]),
    ("cntk Python without script", J, cntk(languageType="Python"), ["pythonScriptFilePath"]),
    ("cntk unknown language", J, cntk(languageType="Lua"), ["languageType"]),
    ("caffe config and script", J, caffe(configFilePath="s.prototxt", pythonScriptFilePath="t.py"),
     ["configFilePath", "pythonScriptFilePath"]),
    ("caffe neither", J, caffe(), ["configFilePath", "pythonScriptFilePath"]),
    ("caffe interpreter without script", J, caffe(configFilePath="s.prototxt", pythonInterpreterPath="/usr/bin/python"),
     ["pythonInterpreterPath", "pythonScriptFilePath"]),
    # --- job pieces
    ("jobPreparation without commandLine", J, job(jobPreparation={}), ["jobPreparation", "commandLine"]),
    ("input directory without path", J, job(inputDirectories=[{"id": "IN"}]), ["inputDirectories", "path"]),
    ("input directory id with dash", J, job(inputDirectories=[{"id": "in-put", "path": "p"}]),
     ["inputDirectories", "id"]),
    ("output directory without pathPrefix", J, job(outputDirectories=[{"id": "OUT"}]),
     ["outputDirectories", "pathPrefix"]),
    ("output directory ids twice", J, job(outputDirectories=[{"id": "OUT", "pathPrefix": "a"},
                                                             {"id": "out", "pathPrefix": "b"}]),
     ["outputDirectories[1].id"]),
    ("environment variable without value", J, job(environmentVariables=[{"name": "A"}]),
     ["environmentVariables", "value"]),
    ("environment variable bad name", J, job(environmentVariables=[{"name": "1A", "value": ""}]),
     ["environmentVariables", "name"]),
    ("variable and secret share a name", J, job(environmentVariables=[{"name": "TOKEN", "value": "x"}],
                                                secrets=[secret()]),
     ["secrets[0].name", "environmentVariables[0].name"]),
    ("secret without value or reference", J, job(secrets=[secret(value=None)]), ["value or valueSecretReference"]),
    ("secret with value and reference", J, job(secrets=[secret(valueSecretReference=KEY_VAULT_REF)]),
     ["value or valueSecretReference"]),
    ("secret reference without secretUrl", J, job(secrets=[secret(value=None, valueSecretReference={
        "sourceVault": KEY_VAULT_REF["sourceVault"]})]), ["valueSecretReference", "secretUrl"]),
    ("secret reference without sourceVault", J, job(secrets=[secret(value=None, valueSecretReference={
        "secretUrl": "https://kv/secrets/s"})]), ["valueSecretReference", "sourceVault"]),
    ("container without imageSourceRegistry", J, job(containerSettings={}),
     ["containerSettings", "imageSourceRegistry"]),
    ("registry without image", J, job(containerSettings={"imageSourceRegistry": {}}), ["imageSourceRegistry", "image"]),
    ("registry credentials without username", J, job(containerSettings=registry(username=None)), ["username"]),
    ("registry credentials without password", J, job(containerSettings=registry(password=None)),
     ["password or passwordSecretReference"]),
    ("registry password and reference", J, job(containerSettings=registry(passwordSecretReference=KEY_VAULT_REF)),
     ["password or passwordSecretReference"]),
    ("shmSize unreadable", J, job(containerSettings={"imageSourceRegistry": {"image": "u"}, "shmSize": "lots"}),
     ["shmSize"]),
    # --- durations
    ("maxWallClockTime unreadable", J, job(constraints={"maxWallClockTime": "forever"}), ["maxWallClockTime"]),
    ("maxWallClockTime as number", J, job(constraints={"maxWallClockTime": 3600}), ["maxWallClockTime"]),
    ("maxWallClockTime in months", J, job(constraints={"maxWallClockTime": "P1M"}), ["maxWallClockTime"]),
    ("maxWallClockTime zero", J, job(constraints={"maxWallClockTime": "00:00:00"}), ["maxWallClockTime"]),
    ("maxWallClockTime 25 hours as hh:mm:ss", J, job(constraints={"maxWallClockTime": "25:00:00"}),
     ["maxWallClockTime"]),
    ("maxWallClockTime empty ISO", J, job(constraints={"maxWallClockTime": "PT"}), ["maxWallClockTime"]),
    ("constraints unknown member", J, job(constraints={"maxRetries": 3}), ["constraints", "maxRetries"]),
    # --- volumes
    ("file share without credentials", J, job(mountVolumes={"azureFileShares": [azure_file_share(credentials=None)]}),
     ["azureFileShares", "credentials"]),
    ("file share credentials empty", J, job(mountVolumes={"azureFileShares": [azure_file_share(credentials={})]}),
     ["accountKey or accountKeySecretReference"]),
    ("file share key and reference", J, job(mountVolumes={"azureFileShares": [azure_file_share(credentials={
        "accountKey": "k", "accountKeySecretReference": KEY_VAULT_REF})]}),
     ["accountKey or accountKeySecretReference"]),
    ("file share without azureFileUrl", J, job(mountVolumes={"azureFileShares": [azure_file_share(azureFileUrl=None)]}),
     ["azureFileUrl"]),
    ("file share fileMode not octal", J, job(mountVolumes={"azureFileShares": [azure_file_share(fileMode="0999")]}),
     ["fileMode"]),
    ("file share directoryMode not octal", J,
     job(mountVolumes={"azureFileShares": [azure_file_share(directoryMode="rwx")]}), ["directoryMode"]),
    ("absolute relativeMountPath", J,
     job(mountVolumes={"azureFileShares": [azure_file_share(relativeMountPath="/mnt")]}),
     ["relativeMountPath"]),
    ("relativeMountPath leaves the root", J,
     job(mountVolumes={"azureBlobFileSystems": [blob_file_system(relativeMountPath="../etc")]}), ["relativeMountPath"]),
    # --- Azure's naming rules and the bounds of shared/models/limits.py
    ("relativeMountPath with '..' inside", J,
     job(mountVolumes={"azureBlobFileSystems": [blob_file_system(relativeMountPath="a/../b")]}), ["relativeMountPath"]),
    ("accountName '..'", J, job(mountVolumes={"azureFileShares": [azure_file_share(accountName="..")]}),
     ["azureFileShares.0.accountName"]),
    ("containerName '../..'", J, job(mountVolumes={"azureBlobFileSystems": [blob_file_system(containerName="../..")]}),
     ["azureBlobFileSystems.0.containerName"]),
    ("share name in capitals", J, job(mountVolumes={"azureFileShares": [azure_file_share(
        azureFileUrl="https://acct.file.core.windows.net/Share")]}), ["azureFileShares.0.azureFileUrl"]),
    ("file server id of a cluster", J, job(mountVolumes={"fileServers": [{"fileServer": CLUSTER_ID,
                                                                         "relativeMountPath": "n"}]}),
     ["fileServers.0.fileServer.id"]),
    ("environment variable name with a trailing newline", J, job(environmentVariables=[{"name": "A\n", "value": ""}]),
     ["environmentVariables.0.name"]),
    ("processCount beyond 512 per node", J, toolkit_job("customMpiSettings", {"commandLine": "x", "processCount": 513}),
     ["customMpiSettings.processCount", "512"]),
    ("nodeCount beyond 1000", J, job(nodeCount=1001), ["nodeCount"]),
    ("too many secrets", J, job(secrets=[secret(name=f"S{i}") for i in range(1001)]), ["secrets"]),
    ("command line beyond 32768 characters", J, job(customToolkitSettings={"commandLine": "x" * 32769}),
     ["customToolkitSettings.commandLine"]),
    ("a path beyond 4096 characters", J, job(stdOutErrPathPrefix="/" + "x" * 4096), ["stdOutErrPathPrefix"]),
    ("two volumes, one mount path", J, job(mountVolumes={
        "azureFileShares": [azure_file_share(relativeMountPath="x")],
        "azureBlobFileSystems": [blob_file_system(relativeMountPath="x")]}),
     ["azureBlobFileSystems[0].relativeMountPath", "azureFileShares[0].relativeMountPath"]),
    ("blob without containerName", J,
     job(mountVolumes={"azureBlobFileSystems": [blob_file_system(containerName=None)]}),
     ["containerName"]),
    ("file server volume without fileServer", J, job(mountVolumes={"fileServers": [{"relativeMountPath": "n"}]}),
     ["fileServers", "fileServer"]),
    ("unmanaged without mountCommand", J, job(mountVolumes={"unmanagedFileSystems": [{"relativeMountPath": "n"}]}),
     ["unmanagedFileSystems", "mountCommand"]),
    # --- clusters
    ("cluster without properties", C, {}, ["properties"]),
    ("cluster without vmSize", C, cluster(vmSize=None), ["vmSize"]),
    ("cluster without userAccountSettings", C, cluster(userAccountSettings=None), ["userAccountSettings"]),
    ("cluster without adminUserName", C, cluster(userAccountSettings={"adminUserPassword": "p"}), ["adminUserName"]),
    ("vmPriority unknown", C, cluster(vmPriority="spot"), ["vmPriority"]),
    ("vmSize STANDARD_A0", C, cluster(vmSize="STANDARD_A0"), ["vmSize"]),
    ("vmSize DS series", C, cluster(vmSize="Standard_DS2_v2"), ["vmSize"]),
    ("vmSize GS series", C, cluster(vmSize="STANDARD_GS1"), ["vmSize"]),
    ("scaleSettings empty", C, cluster(scaleSettings={}), ["manual or autoScale", "neither"]),
    ("scaleSettings both", C, cluster(scaleSettings={"manual": {"targetNodeCount": 1},
                                                     "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 1}}),
     ["manual", "autoScale"]),
    ("manual without targetNodeCount", C, manual(targetNodeCount=None), ["manual", "targetNodeCount"]),
    ("manual targetNodeCount negative", C, manual(targetNodeCount=-1), ["targetNodeCount"]),
    ("nodeDeallocationOption unknown", C, manual(nodeDeallocationOption="kill"), ["nodeDeallocationOption"]),
    ("autoScale without minimumNodeCount", C, autoscale(minimumNodeCount=None), ["minimumNodeCount"]),
    ("autoScale without maximumNodeCount", C, autoscale(maximumNodeCount=None), ["maximumNodeCount"]),
    ("autoScale min > max", C, autoscale(minimumNodeCount=5, maximumNodeCount=4),
     ["minimumNodeCount", "maximumNodeCount"]),
    ("autoScale initial > max", C, autoscale(initialNodeCount=5), ["initialNodeCount", "maximumNodeCount"]),
    ("autoScale initial < min", C, autoscale(minimumNodeCount=2, initialNodeCount=1), ["initialNodeCount",
                                                                                      "minimumNodeCount"]),
    ("autoScale negative min", C, autoscale(minimumNodeCount=-1), ["minimumNodeCount"]),
    ("image without sku", C, image(sku=None), ["imageReference", "sku"]),
    ("image id of another kind", C, image(virtualMachineImageId=f"{SUB}/providers/Microsoft.Compute/disks/d"),
     ["virtualMachineImageId"]),
    ("setup task without commandLine", C, setup_task(commandLine=None), ["setupTask", "commandLine"]),
    ("setup task without stdOutErrPathPrefix", C, setup_task(stdOutErrPathPrefix=None), ["stdOutErrPathPrefix"]),
    ("setup task read-only suffix", C, setup_task(stdOutErrPathSuffix="x"), ["stdOutErrPathSuffix"]),
    ("setup task secret without value", C, setup_task(secrets=[secret(value=None)]), ["value or valueSecretReference"]),
    ("app insights without component", C, app_insights(component=None), ["appInsightsReference", "component"]),
    ("app insights without key", C, app_insights(instrumentationKey=None),
     ["instrumentationKey or instrumentationKeySecretReference"]),
    ("performance counters without reference", C, cluster(nodeSetup={"performanceCountersSettings": {}}),
     ["appInsightsReference"]),
    ("read-only provisioningState", C, cluster(provisioningState="succeeded"), ["provisioningState"]),
    ("subnet without id", C, cluster(subnet={}), ["subnet", "id"]),
    ("patch of vmSize", U, {"properties": {"vmSize": "STANDARD_NC12"}}, ["vmSize"]),
    ("patch targetNodeCount as text", U, {"properties": {"scaleSettings": {"manual": {"targetNodeCount": "2"}}}},
     ["targetNodeCount"]),
    ("patch maximumNodeCount negative", U, {"properties": {"scaleSettings": {"autoScale": {"maximumNodeCount": -1}}}},
     ["maximumNodeCount"]),
    # --- file servers
    ("file server without properties", F, {}, ["properties"]),
    ("file server without vmSize", F, file_server(vmSize=None), ["vmSize"]),
    ("file server without sshConfiguration", F, file_server(sshConfiguration=None), ["sshConfiguration"]),
    ("file server without dataDisks", F, file_server(dataDisks=None), ["dataDisks"]),
    ("ssh without userAccountSettings", F, file_server(sshConfiguration={}), ["userAccountSettings"]),
    ("401 ssh ranges", F, file_server(sshConfiguration={"publicIPsToAllow": ["*"] * 401,
                                                        "userAccountSettings": {"adminUserName": "a"}}),
     ["publicIPsToAllow"]),
    ("disks without diskSizeInGB", F, disks(diskSizeInGB=None), ["diskSizeInGB"]),
    ("disks without diskCount", F, disks(diskCount=None), ["diskCount"]),
    ("disks without storageAccountType", F, disks(storageAccountType=None), ["storageAccountType"]),
    ("disk size 0", F, disks(diskSizeInGB=0), ["diskSizeInGB"]),
    ("disk count 0", F, disks(diskCount=0), ["diskCount"]),
    ("storageAccountType unknown", F, disks(storageAccountType="Premium_ZRS"), ["storageAccountType"]),
    ("cachingType unknown", F, disks(cachingType="writeback"), ["cachingType"]),
    # --- workspaces
    ("workspace without location", W, {}, ["location"]),
    ("workspace tag not text", W, {"location": "eastus", "tags": {"n": 1}}, ["tags"]),
    ("workspace patch of location", WU, {"location": "westus"}, ["location"]),
]


@pytest.mark.parametrize(("model", "body", "names"), [row[1:] for row in REFUSED], ids=[row[0] for row in REFUSED])
def test_invalid_body_is_refused_naming_the_wire_field(model: type[BaseModel], body: Any, names: list[str]) -> None:
    text = problems(model, body)
    assert "\n" not in text, f"expected one problem, the one under test:\n{text}"
    for name in names:
        assert name in text, f"{name!r} not named in:\n{text}"
        snake = to_snake(name)
        if name.isidentifier() and any(c.isupper() for c in name[1:]):  # a camelCase wire name
            assert snake not in text, f"the attribute name {snake!r} leaks into:\n{text}"


def test_attribute_names_are_refused_when_reading_by_wire_name_only() -> None:
    # Models also accept attribute names (populate_by_name, for building them in Python); a reader of
    # wire bodies that wants only the spec's names validates with by_name=False.
    body = job()
    body["properties"]["node_count"] = body["properties"].pop("nodeCount")
    with pytest.raises(ValidationError) as caught:
        JobCreateParameters.model_validate_json(json.dumps(body), by_name=False)
    assert {".".join(map(str, e["loc"])) for e in caught.value.errors()} == {"properties.nodeCount",
                                                                             "properties.node_count"}


# --------------------------------------------------------------------------------------------------
# Toolkits and toolType
# --------------------------------------------------------------------------------------------------

TOOLKIT_SETTINGS = [
    ("cntkSettings", {"configFilePath": "c.bs"}, "cntk"),
    ("pyTorchSettings", {"pythonScriptFilePath": "t.py"}, "pytorch"),
    ("tensorFlowSettings", {"pythonScriptFilePath": "t.py"}, "tensorflow"),
    ("caffeSettings", {"configFilePath": "s.prototxt"}, "caffe"),
    ("caffe2Settings", {"pythonScriptFilePath": "t.py"}, "caffe2"),
    ("chainerSettings", {"pythonScriptFilePath": "t.py"}, "chainer"),
    ("customToolkitSettings", {"commandLine": "echo"}, "custom"),
    ("customMpiSettings", {"commandLine": "echo"}, "mpi"),
    ("horovodSettings", {"pythonScriptFilePath": "t.py"}, "horovod"),
]


@pytest.mark.parametrize(("toolkit", "settings", "tool_type"), TOOLKIT_SETTINGS, ids=[t[0] for t in TOOLKIT_SETTINGS])
def test_tool_type_is_derived_from_the_one_toolkit(toolkit: str, settings: dict[str, Any], tool_type: str) -> None:
    properties = parse(JobCreateParameters, toolkit_job(toolkit, settings)).properties
    assert tool_type_of(properties) == ToolType(tool_type)
    assert "toolType" not in properties.to_wire()  # never stored from the request: always derived


def test_every_toolkit_of_the_spec_has_a_tool_type() -> None:
    toolkits = {name for name in DEFINITIONS["JobBaseProperties"]["properties"] if name.endswith("Settings")} - {
        "containerSettings"}
    assert toolkits == {t[0] for t in TOOLKIT_SETTINGS} == {JobBaseProperties.model_fields[a].alias for a in TOOLKITS}


# Strings the spec lists values for only in prose: the service took them in any case and echoed them.
PROSE_ENUMS = [
    *[(f"pytorch {backend}", "pyTorchSettings", {"pythonScriptFilePath": "t.py", "communicationBackend": backend},
       "communicationBackend", backend) for backend in ("gloo", "GLOO", "Gloo", "tcp", "mpi", "nccl")],
    ("cntk python", "cntkSettings", {"languageType": "python", "pythonScriptFilePath": "t.py"}, "languageType",
     "python"),
    ("cntk brainscript", "cntkSettings", {"languageType": "brainscript", "configFilePath": "c.bs"}, "languageType",
     "brainscript"),
    # Keras-CNTK: a script and no languageType is Python, and the service reported it so.
    ("cntk script, no language", "cntkSettings", {"pythonScriptFilePath": "t.py"}, "languageType", "Python"),
    ("cntk config, no language", "cntkSettings", {"configFilePath": "c.bs"}, "languageType", "BrainScript"),
    ("cntk nothing, no language", "cntkSettings", {}, "languageType", "BrainScript"),
]


@pytest.mark.parametrize(("toolkit", "settings", "member", "reported"), [p[1:] for p in PROSE_ENUMS],
                         ids=[p[0] for p in PROSE_ENUMS])
def test_prose_enums_are_accepted_in_any_case_and_echoed(toolkit: str, settings: dict[str, Any], member: str,
                                                         reported: str) -> None:
    wire = parse(JobCreateParameters, toolkit_job(toolkit, settings)).to_wire()["properties"]
    assert wire[toolkit][member] == reported
    assert parse(Job, {"properties": wire}).to_wire()["properties"][toolkit][member] == reported


PROCESS_COUNTED = ["cntkSettings", "pyTorchSettings", "caffeSettings", "chainerSettings", "customMpiSettings",
                   "horovodSettings"]


@pytest.mark.parametrize("toolkit", PROCESS_COUNTED)
def test_process_count_is_reported_as_the_node_count_unless_given(toolkit: str) -> None:
    settings = dict(next(t[1] for t in TOOLKIT_SETTINGS if t[0] == toolkit))
    assert parse(JobCreateParameters, toolkit_job(toolkit, settings, nodeCount=3)).to_wire()[
        "properties"][toolkit]["processCount"] == 3
    given = parse(JobCreateParameters, toolkit_job(toolkit, settings | {"processCount": 5}, nodeCount=3))
    assert given.to_wire()["properties"][toolkit]["processCount"] == 5


@pytest.mark.parametrize("toolkit", ["tensorFlowSettings", "caffe2Settings", "customToolkitSettings"])
def test_toolkits_without_a_process_count_get_none(toolkit: str) -> None:
    # The service left TensorFlow's workerCount/parameterServerCount out of a one-node job's answer.
    settings = next(t[1] for t in TOOLKIT_SETTINGS if t[0] == toolkit)
    wire = parse(JobCreateParameters, toolkit_job(toolkit, settings, nodeCount=2)).to_wire()["properties"]
    assert wire[toolkit] == settings


def test_tool_type_of_a_job_without_toolkit_is_an_error() -> None:
    with pytest.raises(ValueError, match="no toolkit"):
        tool_type_of(parse(JobProperties, {}))


def test_job_answer_reads_its_tool_type() -> None:
    answer = parse(Job, {"properties": {"toolType": "pytorch", "pyTorchSettings": {"pythonScriptFilePath": "t.py"}}})
    assert answer.to_wire()["properties"]["toolType"] == "pytorch"


def test_job_answer_without_node_count_reads() -> None:
    # Answers are read leniently; the nodeCount rule must not fail on what an answer leaves out.
    answer = parse(Job, {"properties": {"tensorFlowSettings": {"pythonScriptFilePath": "t.py",
                                                               "parameterServerCount": 2}}})
    assert answer.properties.node_count is None


# --------------------------------------------------------------------------------------------------
# Secrets: accepted, never in a dump, present only when revealed
# --------------------------------------------------------------------------------------------------

SECRETS = [
    ("job secret", J, job(secrets=[secret()]), ("properties", "secrets", 0, "value"), "S3CRET"),
    ("registry password", J, job(containerSettings=registry()),
     ("properties", "containerSettings", "imageSourceRegistry", "credentials", "password"), "S3CRET"),
    ("job file share key", J, job(mountVolumes={"azureFileShares": [azure_file_share()]}),
     ("properties", "mountVolumes", "azureFileShares", 0, "credentials", "accountKey"), "S3CRET-KEY=="),
    ("job blob key", J, job(mountVolumes={"azureBlobFileSystems": [blob_file_system()]}),
     ("properties", "mountVolumes", "azureBlobFileSystems", 0, "credentials", "accountKey"), "S3CRET-KEY=="),
    ("cluster admin password", C, cluster(userAccountSettings={"adminUserName": "a", "adminUserPassword": "S3CRET"}),
     ("properties", "userAccountSettings", "adminUserPassword"), "S3CRET"),
    ("setup task secret", C, setup_task(secrets=[secret()]),
     ("properties", "nodeSetup", "setupTask", "secrets", 0, "value"), "S3CRET"),
    ("cluster file share key", C, cluster(nodeSetup={"mountVolumes": {"azureFileShares": [azure_file_share()]}}),
     ("properties", "nodeSetup", "mountVolumes", "azureFileShares", 0, "credentials", "accountKey"), "S3CRET-KEY=="),
    ("app insights key", C, app_insights(),
     ("properties", "nodeSetup", "performanceCountersSettings", "appInsightsReference", "instrumentationKey"),
     "S3CRET-IKEY"),
    ("file server admin password", F, file_server(),
     ("properties", "sshConfiguration", "userAccountSettings", "adminUserPassword"), "S3CRET"),
]


@pytest.mark.parametrize(("model", "body", "path", "value"), [row[1:] for row in SECRETS],
                         ids=[row[0] for row in SECRETS])
def test_secret_is_never_dumped_unless_revealed(model: type[BaseModel], body: Any, path: tuple[Any, ...],
                                               value: str) -> None:
    parsed = parse(model, body)
    for dump in (json.dumps(parsed.to_wire()), parsed.model_dump_json(), parsed.model_dump_json(by_alias=True),
                 json.dumps(parsed.model_dump(mode="json"))):
        assert value not in dump
    wire = parsed.to_wire()
    with pytest.raises(KeyError):
        at(wire, path)
    assert at(wire, path[:-1]) is not None  # only the secret goes, not what holds it
    assert at(parsed.to_wire(reveal_secrets=True), path) == value


# Secrets with a Key Vault alternative ("one of value or valueSecretReference must be specified").
HAS_REFERENCE = {row[0] for row in SECRETS} - {"cluster admin password", "file server admin password"}


@pytest.mark.parametrize(("name", "model", "body"), [row[:3] for row in SECRETS], ids=[row[0] for row in SECRETS])
def test_redacted_dump_reads_back_only_as_redacted(name: str, model: type[BaseModel], body: Any) -> None:
    # A stored or answered document lost its secrets: it is read with REDACTED, where "one of value or
    # reference" no longer requires the value; a request without either is still refused.
    redacted = parse(model, body).to_wire()
    assert parse(model, redacted, context=REDACTED).to_wire() == redacted
    if name in HAS_REFERENCE:
        with pytest.raises(ValidationError, match="SecretReference"):
            parse(model, redacted)


def test_secret_references_are_kept() -> None:
    # A Key Vault reference is not itself a secret: users see where their secret comes from.
    wire = parse(J, job(secrets=[secret(value=None, valueSecretReference=KEY_VAULT_REF)])).to_wire()
    assert wire["properties"]["secrets"] == [{"name": "TOKEN", "valueSecretReference": KEY_VAULT_REF}]


def test_secrets_are_dropped_from_answers_too() -> None:
    stored = parse(J, job(secrets=[secret()], containerSettings=registry())).to_wire(reveal_secrets=True)
    answer = parse(Job, stored).to_wire()
    assert "S3CRET" not in json.dumps(answer)
    assert answer["properties"]["secrets"] == [{"name": "TOKEN"}]


# --------------------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------------------

DURATIONS_READ = [
    ("7.00:00:00", timedelta(days=7)),  # the spec's default, .NET TimeSpan
    ("P7D", timedelta(days=7)),  # the examples' form, ISO 8601
    ("01:30:00", timedelta(hours=1, minutes=30)),
    ("0.00:00:01.5", timedelta(seconds=1.5)),
    ("PT1H30M", timedelta(hours=1, minutes=30)),
    ("P1W", timedelta(weeks=1)),
    ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("PT0.5S", timedelta(milliseconds=500)),
]


@pytest.mark.parametrize(("text", "expected"), DURATIONS_READ, ids=[d[0] for d in DURATIONS_READ])
def test_duration_is_read_in_dotnet_and_iso_forms(text: str, expected: timedelta) -> None:
    constraints = parse(JobCreateParameters, job(constraints={"maxWallClockTime": text})).properties.constraints
    assert constraints.max_wall_clock_time == expected


DURATIONS_WRITTEN = [
    (timedelta(days=7), "P7D"),
    (timedelta(hours=1, minutes=30), "PT1H30M"),
    (timedelta(days=1, hours=2, minutes=3, seconds=4), "P1DT2H3M4S"),
    (timedelta(milliseconds=1500), "PT1.5S"),
]


@pytest.mark.parametrize(("value", "text"), DURATIONS_WRITTEN, ids=[d[1] for d in DURATIONS_WRITTEN])
def test_duration_is_written_as_iso_and_reads_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


# --------------------------------------------------------------------------------------------------
# Scale settings: PATCH merges into the current settings, and the result obeys ScaleSettings
# --------------------------------------------------------------------------------------------------

MANUAL_2 = {"manual": {"targetNodeCount": 2, "nodeDeallocationOption": "requeue"}}
AUTO_1_4 = {"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 4, "initialNodeCount": 1}}

SCALE_PATCHES = [
    ("resize", MANUAL_2, {"manual": {"targetNodeCount": 5}},
     {"manual": {"targetNodeCount": 5, "nodeDeallocationOption": "requeue"}}),
    ("deallocation option only", MANUAL_2, {"manual": {"nodeDeallocationOption": "terminate"}},
     {"manual": {"targetNodeCount": 2, "nodeDeallocationOption": "terminate"}}),
    ("raise max", AUTO_1_4, {"autoScale": {"maximumNodeCount": 8}},
     {"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 8, "initialNodeCount": 1}}),
    ("switch to autoScale (the PatchCluster example)", MANUAL_2, {"autoScale": {"minimumNodeCount": 0,
                                                                                 "maximumNodeCount": 10}},
     {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 10, "initialNodeCount": 0}}),
    ("switch to manual", AUTO_1_4, {"manual": {"targetNodeCount": 3}},
     {"manual": {"targetNodeCount": 3, "nodeDeallocationOption": "requeue"}}),
    ("no change", AUTO_1_4, {}, AUTO_1_4),
]


@pytest.mark.parametrize(("current", "patch", "expected"), [row[1:] for row in SCALE_PATCHES],
                         ids=[row[0] for row in SCALE_PATCHES])
def test_scale_patch_merges(current: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert parse(ScaleSettingsPatch, patch).merged_into(current).to_wire() == expected


SCALE_PATCHES_REFUSED = [
    ("min above max", AUTO_1_4, {"autoScale": {"minimumNodeCount": 5}}, ["minimumNodeCount", "maximumNodeCount"]),
    ("switch to manual without targetNodeCount", AUTO_1_4, {"manual": {"nodeDeallocationOption": "terminate"}},
     ["targetNodeCount"]),
    ("both modes", MANUAL_2, {"manual": {"targetNodeCount": 1}, "autoScale": {"minimumNodeCount": 0,
                                                                              "maximumNodeCount": 1}},
     ["manual", "autoScale"]),
]


@pytest.mark.parametrize(("current", "patch", "names"), [row[1:] for row in SCALE_PATCHES_REFUSED],
                         ids=[row[0] for row in SCALE_PATCHES_REFUSED])
def test_scale_patch_that_breaks_the_rules_is_refused(current: dict[str, Any], patch: dict[str, Any],
                                                      names: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(ScaleSettingsPatch, patch).merged_into(current)
    text = str(caught.value)
    assert all(name in text for name in names), text


def test_autoscale_initial_count_below_the_minimum_only_as_the_default_0() -> None:
    settings = parse(AutoScaleSettings, {"minimumNodeCount": 2, "maximumNodeCount": 4})
    assert settings.initial_node_count == 0
    # azure-mgmt-batchai and az send initialNodeCount 0 whenever none is set: the same "start empty"
    assert parse(AutoScaleSettings, {"minimumNodeCount": 2, "maximumNodeCount": 4,
                                     "initialNodeCount": 0}).initial_node_count == 0
    assert "initialNodeCount" in problems(AutoScaleSettings, {"minimumNodeCount": 2, "maximumNodeCount": 4,
                                                               "initialNodeCount": 1})


# --------------------------------------------------------------------------------------------------
# The spec's examples: every request body and every answer
# --------------------------------------------------------------------------------------------------

# The examples' own slip (reference README): GetJob and PutJob answer `priority`, the spec says
# `schedulingPriority`; the spec wins, so the slip is taken out before reading those answers.
EXAMPLE_SLIPS = {"priority"}


def example_operations() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(example name, the example, the operation of the spec that refers to it)."""
    found = []
    for methods in SPEC["paths"].values():
        for method, op in methods.items():
            for ref in op.get("x-ms-examples", {}).values():
                example = json.loads((SPEC_DIR / ref["$ref"]).read_text())
                found.append((Path(ref["$ref"]).stem, example, {**op, "method": method}))
    return found




def request_bodies() -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    found = []
    for name, example, op in example_operations():
        for param in op.get("parameters", []):
            if param.get("in") == "body":
                found.append((name, getattr(models, ref_name(param["schema"])),
                              with_real_names(example["parameters"][param["name"]])))
    return found


def answer_bodies() -> list[tuple[str, type[BaseModel], Any]]:
    found = []
    for name, example, op in example_operations():
        for status, answer in example["responses"].items():
            schema = op["responses"].get(status, {}).get("schema")
            if schema and "body" in answer:
                found.append((f"{name}-{status}", getattr(models, ref_name(schema)), answer["body"]))
    return found


def test_every_put_and_patch_example_has_a_body_to_check() -> None:
    assert {(name, model.__name__) for name, model, _ in request_bodies()} == {
        ("PutWorkspace", "WorkspaceCreateParameters"), ("PatchWorkspace", "WorkspaceUpdateParameters"),
        ("PutCluster", "ClusterCreateParameters"), ("PatchCluster", "ClusterUpdateParameters"),
        ("PutFileServer", "FileServerCreateParameters"), ("PutJob", "JobCreateParameters"),
    }


@pytest.mark.parametrize(("model", "body"), [row[1:] for row in request_bodies()], ids=[r[0] for r in request_bodies()])
def test_example_request_body_is_accepted(model: type[BaseModel], body: dict[str, Any]) -> None:
    parsed = parse(model, body)
    assert is_within(body, parsed.to_wire(reveal_secrets=True))


def test_example_cluster_secrets_are_not_written() -> None:
    body = next(b for name, _, b in request_bodies() if name == "PutCluster")
    wire = json.dumps(parse(ClusterCreateParameters, body).to_wire())
    assert "admin_user_password" not in wire and "adminUserPassword" not in wire and "accountKey" not in wire
    assert "adminUserSshPublicKey" in wire


def test_example_job_gets_the_defaults() -> None:
    body = next(b for name, _, b in request_bodies() if name == "PutJob")
    properties = parse(JobCreateParameters, body).properties
    assert properties.constraints.max_wall_clock_time == timedelta(days=7)
    assert tool_type_of(properties) == ToolType.CUSTOM


@pytest.mark.parametrize(("model", "body"), [row[1:] for row in answer_bodies()], ids=[r[0] for r in answer_bodies()])
def test_example_answer_is_read(model: type[BaseModel], body: Any) -> None:
    parsed = parse(model, without(body, EXAMPLE_SLIPS), context=REDACTED)
    # Every member the example answers is written back under the same name (times may change form).
    assert member_paths(without(body, EXAMPLE_SLIPS)) <= member_paths(parsed.to_wire())


def member_paths(document: Any, prefix: str = "") -> set[str]:
    """Paths of the members that have a value ("properties.scaleSettings.manual", "value[].name")."""
    if isinstance(document, dict):
        return {p for k, v in document.items() if v is not None
                for p in {f"{prefix}{k}"} | member_paths(v, f"{prefix}{k}.")}
    if isinstance(document, list):
        return {p for v in document for p in member_paths(v, f"{prefix.rstrip('.')}[].")}
    return set()
