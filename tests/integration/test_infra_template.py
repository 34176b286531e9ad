"""infra/main.bicep deploys what the code needs. Bicep cannot be compiled here, so the template is
parsed with pycep-parser (a Python Bicep parser from PyPI) and checked against the code itself:
- every queue, topic and subscription the code names (shared/lanes.py, the function triggers) exists
  with the code's settings;
- every Cosmos DB container of shared/resources.py exists with the code's partition key and indexing;
- every setting an Azure deployment needs is set, every BATCHAI_ setting set is one the code reads,
  every app setting a trigger names (connections, %schedules%) is set, and the literal values pass
  the code's own validation;
- every role the code needs is assigned to the app's identity, and no key is handed out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared import lanes
from shared.adapters.azure.cosmos_store import _PARTITION_KEY_PATH, _indexing_policy
from shared.ports.messaging import EntityOptions
from shared.resources import CONTAINERS
from shared.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "main.bicep"
# What an Azure deployment must set (the others keep defaults that serve Azure as they are).
AZURE_SETTINGS = {
    "store", "cosmos_endpoint", "cosmos_database", "messaging", "servicebus_connection", "pool",
    "azure_subscription_id", "azure_resource_group", "default_subnet_id", "agent_package", "public_endpoint",
    "blobs", "blob_endpoint", "data_dir", "default_location", "auth_tenant_id", "auth_audience", "auth_owners",
    "otel_exporter", "reconcile_schedule", "outbox_schedule", "timers_run_on_startup", "arm_read_interval_seconds",
}
# Never on Azure: the local host's, or keys (access is keyless).
NOT_ON_AZURE = {"amqp_port", "local_max_nodes", "cosmos_key", "cosmos_verify_tls", "cosmos_endpoint_discovery",
                "auth_function_keys"}
ROLES = {  # built-in role definition ids
    "Azure Service Bus Data Owner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Virtual Machine Contributor": "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
    "Network Contributor": "4d97b98b-1d4f-4787-a291-c67834d212e7",
}
COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"
_TRIGGERS = """
import json, function_app
out = [fn.get_trigger().get_dict_repr() for fn in function_app.app.get_functions()]
print(json.dumps([t for t in out if t["type"] != "httpTrigger"], default=str))
"""


@cache
def template() -> dict[str, Any]:
    return BicepParser().parse(file_path=TEMPLATE)


def resources(kind: str) -> dict[str, dict[str, Any]]:
    """Symbolic name -> config of the template's resources of one type."""
    return {symbol: r["config"] for symbol, r in template()["resources"].items() if r["type"] == kind}


def named(kind: str, name: str) -> dict[str, Any]:
    found = [c for c in resources(kind).values() if c["name"] == name]
    assert len(found) == 1, f"{kind} {name!r}: {len(found)} in the template"
    return found[0]


def accessor(value: Any) -> list[str]:
    """`a.b.c` as ["a", "b", "c"] (pycep nests property accessors); a plain name as [name]."""
    if isinstance(value, str):
        return [value]
    operands = value["operator"]["operands"]
    assert value["operator"]["type"] == "property_accessor", value
    return accessor(operands["operand_1"]) + accessor(operands["operand_2"])


def duration(text: str) -> timedelta:
    """An ISO 8601 duration as ARM takes them (P7D, PT1M, PT15S...)."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", text)
    assert match, text
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def app_settings() -> dict[str, Any]:
    [site] = resources("Microsoft.Web/sites").values()
    settings = site["properties"]["siteConfig"]["appSettings"]
    names = [s["name"] for s in settings]
    assert len(names) == len(set(names)), "an app setting is set twice"
    return {s["name"]: s["value"] for s in settings}


@cache
def triggers() -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-c", _TRIGGERS], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_queue_like(config: dict[str, Any], options: EntityOptions, what: str) -> None:
    props = config["properties"]
    assert duration(props["lockDuration"]) == options.lock_duration, what
    assert props["maxDeliveryCount"] == options.max_delivery_count, what


def check_duplicate_detection(config: dict[str, Any], window: timedelta | None, what: str) -> None:
    props = config["properties"]
    assert props.get("requiresDuplicateDetection", False) == (window is not None), what
    if window is not None:
        assert duration(props["duplicateDetectionHistoryTimeWindow"]) == window, what


# ---------------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("queue", sorted(lanes.STATIC_QUEUES))
def test_every_static_queue_exists_with_the_codes_settings(queue: str) -> None:
    options = lanes.STATIC_QUEUES[queue]
    config = named("Microsoft.ServiceBus/namespaces/queues", queue)
    check_queue_like(config, options, queue)
    check_duplicate_detection(config, options.duplicate_detection_window, queue)


def test_every_topic_and_subscription_exists_with_the_codes_settings() -> None:
    topics = resources("Microsoft.ServiceBus/namespaces/topics")
    for topic, (options, subscriptions) in lanes.STATIC_TOPICS.items():
        symbol = next(s for s, c in topics.items() if c["name"] == topic)
        check_duplicate_detection(topics[symbol], options.duplicate_detection_window, topic)
        for name, sub_options in subscriptions.items():
            config = named("Microsoft.ServiceBus/namespaces/topics/subscriptions", name)
            assert config["parent"] == symbol, f"{name} is not a subscription of {topic}"
            check_queue_like(config, sub_options, f"{topic}/{name}")


def test_every_entity_a_trigger_listens_to_exists() -> None:
    queues = {c["name"] for c in resources("Microsoft.ServiceBus/namespaces/queues").values()}
    topics = {s: c["name"] for s, c in resources("Microsoft.ServiceBus/namespaces/topics").items()}
    subscriptions = {(topics[c["parent"]], c["name"])
                     for c in resources("Microsoft.ServiceBus/namespaces/topics/subscriptions").values()}
    bus_triggers = [t for t in triggers() if t["type"] == "serviceBusTrigger"]
    assert bus_triggers
    for trigger in bus_triggers:
        if "queueName" in trigger:
            assert trigger["queueName"] in queues
        else:
            assert (trigger["topicName"], trigger["subscriptionName"]) in subscriptions


def test_every_container_has_the_codes_partition_key_and_indexing() -> None:
    containers = {c["name"]: c for c in resources("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers").values()}
    assert set(containers) == {spec.name for spec in CONTAINERS}
    for spec in CONTAINERS:
        resource = containers[spec.name]["properties"]["resource"]
        assert resource["id"] == spec.name
        assert resource["partitionKey"]["paths"] == [_PARTITION_KEY_PATH]
        assert resource.get("indexingPolicy") == _indexing_policy(spec.indexed), spec.name
    [database] = resources("Microsoft.DocumentDB/databaseAccounts/sqlDatabases").values()
    assert accessor(app_settings()["BATCHAI_COSMOS_DATABASE"]) == ["database", "name"]
    assert database["name"] == database["properties"]["resource"]["id"]


def test_every_setting_the_code_needs_on_azure_is_set_and_every_one_set_is_read() -> None:
    settings = app_settings()
    needed = {Settings.setting_name(field) for field in AZURE_SETTINGS}
    assert needed <= set(settings), sorted(needed - set(settings))
    assert AZURE_SETTINGS <= set(Settings.model_fields)
    connections = {t["connection"] for t in triggers() if "connection" in t}
    for name in {n for n in settings if n.startswith(ENV_PREFIX)}:
        field = name.removeprefix(ENV_PREFIX).lower()
        if field in Settings.model_fields:
            assert field not in NOT_ON_AZURE, f"{name} is not for Azure"
        else:  # a trigger connection set by identity: NAME__fullyQualifiedNamespace ...
            assert name.split("__")[0] in connections, f"{name}: no code reads it"
    for connection in connections:  # identity-based: the namespace, the credential and which identity
        for part in ("fullyQualifiedNamespace", "credential", "clientId"):
            assert f"{connection}__{part}" in settings
    for schedule in [t["schedule"] for t in triggers() if t["type"] == "timerTrigger"]:
        assert re.fullmatch(r"%\w+%", schedule) and schedule.strip("%") in settings
    assert {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AZURE_CLIENT_ID"} <= set(settings)
    # Literal values pass the code's own validation, and pick the Azure adapters.
    literal = {k: v for k, v in settings.items() if k.startswith(ENV_PREFIX) and isinstance(v, str)
               and "$" not in v and "__" not in k and v not in template()["parameters"]}
    read = Settings.from_env(literal)
    assert (read.store, read.messaging, read.pool, read.blobs) == ("cosmos", "servicebus", "vmss", "azure")
    assert read.timers_run_on_startup is False and read.otel_exporter == "azuremonitor"


def test_parameters_file_gives_every_parameter_without_default() -> None:
    parameters = template()["parameters"]
    given = json.loads((ROOT / "infra" / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(parameters)
    assert {name for name, p in parameters.items() if "default" not in p} <= set(given)


def _role_id(properties: dict[str, Any]) -> str:
    function = properties["roleDefinitionId"]["function"]
    assert function["type"] == "subscription_resource_id"
    assert function["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    path = accessor(function["parameters"]["resource_name_1"])
    assert path[0] == "roles", path
    return template()["variables"]["roles"]["value"][path[1]]


def test_every_role_the_code_needs_is_assigned_to_the_apps_identity() -> None:
    assigned: dict[str, set[str]] = {}  # role id -> scopes ("resourceGroup" or a resource's symbol)
    for config in resources("Microsoft.Authorization/roleAssignments").values():
        props = config["properties"]
        assert accessor(props["principalId"]) == ["identity", "properties", "principalId"]
        assigned.setdefault(_role_id(props), set()).add(config.get("scope") or "resourceGroup")
    storage = next(s for s, c in resources("Microsoft.Storage/storageAccounts").items())
    bus = next(iter(resources("Microsoft.ServiceBus/namespaces")))
    expected = {
        "Azure Service Bus Data Owner": bus,  # send, receive, and make each cluster's lanes
        "Storage Blob Data Owner": storage,  # the Functions host's storage, by identity
        "Virtual Machine Contributor": "resourceGroup",  # the clusters' scale sets
        "Network Contributor": "resourceGroup",  # join the node subnet, read the NICs
    }
    for role, scope in expected.items():
        assert scope in assigned.get(ROLES[role], set()), f"{role} on {scope}"
    [cosmos_role] = resources("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments").values()
    assert cosmos_role["properties"]["roleDefinitionId"].endswith("/${cosmosDataContributor}")
    assert template()["variables"]["cosmosDataContributor"]["value"] == COSMOS_DATA_CONTRIBUTOR
    assert accessor(cosmos_role["properties"]["principalId"]) == ["identity", "properties", "principalId"]
    [site] = resources("Microsoft.Web/sites").values()
    assert site["identity"]["type"] == "UserAssigned"


def test_access_is_keyless_and_the_plan_is_flex_consumption() -> None:
    text = TEMPLATE.read_text()
    assert "listKeys(" not in text and "listConnectionStrings(" not in text and "AccountKey=" not in text
    [cosmos] = resources("Microsoft.DocumentDB/databaseAccounts").values()
    [bus] = resources("Microsoft.ServiceBus/namespaces").values()
    [storage] = resources("Microsoft.Storage/storageAccounts").values()
    assert cosmos["properties"]["disableLocalAuth"] is True and bus["properties"]["disableLocalAuth"] is True
    assert storage["properties"]["allowSharedKeyAccess"] is False
    [plan] = resources("Microsoft.Web/serverfarms").values()
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    [site] = resources("Microsoft.Web/sites").values()
    assert site["properties"]["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"} & set(app_settings())  # not on Flex


def test_the_nodes_network_has_a_subnet_with_nsg_and_nat_gateway() -> None:
    [vnet] = resources("Microsoft.Network/virtualNetworks").values()
    [subnet] = vnet["properties"]["subnets"]
    nsg = next(iter(resources("Microsoft.Network/networkSecurityGroups")))
    nat = next(iter(resources("Microsoft.Network/natGateways")))
    assert accessor(subnet["properties"]["networkSecurityGroup"]["id"]) == [nsg, "id"]
    assert accessor(subnet["properties"]["natGateway"]["id"]) == [nat, "id"]
    assert resources("Microsoft.Insights/components")
