"""Request bodies from `batchai` flags and Batch AI config files (pure, no I/O)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.cli.bodies import ClusterFlags, MountFlags, Storage, cluster_body, image_reference, job_body
from shared.cli.common import UserError

STORAGE = Storage(account="acct", key="secret")
NO_MOUNTS = MountFlags()


def cluster(config: dict[str, Any] | None = None, flags: ClusterFlags = ClusterFlags(),
            mounts: MountFlags = NO_MOUNTS, storage: Storage = STORAGE,
            ssh_key: str | None = "ssh-rsa DEFAULT") -> dict[str, Any]:
    return cluster_body(config, flags, mounts, storage, "alice", ssh_key)["properties"]


def job(config: dict[str, Any] | None = None, *, cluster_id: str | None = "/clusters/c", node_count: int | None = None,
        priority: str | None = None, prefix: str | None = None, mounts: MountFlags = NO_MOUNTS,
        storage: Storage = STORAGE) -> dict[str, Any]:
    return job_body(config, cluster_id=cluster_id, node_count=node_count, priority=priority,
                    std_out_err_path_prefix=prefix, mounts=mounts, storage=storage)["properties"]


def test_cluster_defaults_from_no_flags() -> None:
    assert cluster() == {
        "vmSize": "STANDARD_NC6",
        "scaleSettings": {"manual": {"targetNodeCount": 1}},
        "userAccountSettings": {"adminUserName": "alice", "adminUserSshPublicKey": "ssh-rsa DEFAULT"},
    }


def test_cluster_without_default_key_has_no_key() -> None:
    assert cluster(ssh_key=None)["userAccountSettings"] == {"adminUserName": "alice"}


@pytest.mark.parametrize("flags", [ClusterFlags(password="pw"), ClusterFlags(ssh_key="ssh-rsa MINE")])
def test_default_ssh_key_only_without_password_or_key(flags: ClusterFlags) -> None:
    account = cluster(flags=flags)["userAccountSettings"]
    assert account.get("adminUserSshPublicKey") != "ssh-rsa DEFAULT"
    assert account.get("adminUserPassword") == flags.password


def test_default_ssh_key_not_added_to_file_password() -> None:
    config = {"properties": {"userAccountSettings": {"adminUserName": "bob", "adminUserPassword": "pw"}}}
    assert cluster(config)["userAccountSettings"] == {"adminUserName": "bob", "adminUserPassword": "pw"}


def test_cluster_flags_set_fields() -> None:
    props = cluster(flags=ClusterFlags(vm_size="STANDARD_D1", vm_priority="lowpriority", target=3,
                                       user_name="carol", subnet="/subnets/s"))
    assert props["vmSize"] == "STANDARD_D1"
    assert props["vmPriority"] == "lowpriority"
    assert props["scaleSettings"] == {"manual": {"targetNodeCount": 3}}
    assert props["userAccountSettings"]["adminUserName"] == "carol"
    assert props["subnet"] == {"id": "/subnets/s"}


@pytest.mark.parametrize(("target", "low", "high", "expected"), [
    # az batchai cluster create: -t alone is a fixed size; --min and --max auto-scale, from -t when given
    (3, None, None, {"manual": {"targetNodeCount": 3}}),
    (0, None, None, {"manual": {"targetNodeCount": 0}}),
    (None, 0, 4, {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4}}),
    (2, 1, 3, {"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 3, "initialNodeCount": 2}}),
    (0, 0, 3, {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 3, "initialNodeCount": 0}}),
    # equal bounds are a fixed size, unless -t starts elsewhere
    (None, 1, 1, {"manual": {"targetNodeCount": 1}}),
    (2, 2, 2, {"manual": {"targetNodeCount": 2}}),
    (1, 2, 2, {"autoScale": {"minimumNodeCount": 2, "maximumNodeCount": 2, "initialNodeCount": 1}}),
])
def test_target_min_and_max_as_az_reads_them(target: int | None, low: int | None, high: int | None,
                                            expected: dict[str, Any]) -> None:
    assert cluster(flags=ClusterFlags(target=target, min_nodes=low, max_nodes=high))["scaleSettings"] == expected


@pytest.mark.parametrize(("flags", "says"), [(ClusterFlags(min_nodes=1), "both --min and --max"),
                                             (ClusterFlags(max_nodes=3, target=1), "both --min and --max"),
                                             (ClusterFlags(min_nodes=3, max_nodes=2), "must not exceed")])
def test_bad_scale_flags_are_user_errors(flags: ClusterFlags, says: str) -> None:
    with pytest.raises(UserError, match=says):
        cluster(flags=flags)


def test_custom_image_goes_with_its_base_image() -> None:
    image_id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/mine"
    props = cluster(flags=ClusterFlags(image="UbuntuLTS", custom_image=image_id))
    assert props["virtualMachineConfiguration"]["imageReference"] == {
        "publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS", "virtualMachineImageId": image_id}
    with pytest.raises(UserError, match="--custom-image needs --image"):
        cluster(flags=ClusterFlags(custom_image=image_id))


@pytest.mark.parametrize(("image", "expected"), [
    ("UbuntuLTS", {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS"}),
    ("ubuntudsvm", {"publisher": "microsoft-ads", "offer": "linux-data-science-vm-ubuntu", "sku": "linuxdsvmubuntu"}),
    ("p:o:s", {"publisher": "p", "offer": "o", "sku": "s"}),
    ("p:o:s:1.0", {"publisher": "p", "offer": "o", "sku": "s", "version": "1.0"}),
])
def test_image_aliases_and_urns(image: str, expected: dict[str, str]) -> None:
    assert cluster(flags=ClusterFlags(image=image))["virtualMachineConfiguration"] == {"imageReference": expected}


@pytest.mark.parametrize("image", ["Windows", "p:o", "p::s", "p:o:s:v:x"])
def test_bad_image_is_user_error(image: str) -> None:
    with pytest.raises(UserError, match="Unknown image"):
        image_reference(image)


def test_setup_task_from_flags() -> None:
    props = cluster(flags=ClusterFlags(setup_task="echo hi", setup_task_output="$AZ_BATCHAI_MOUNT_ROOT/afs"))
    assert props["nodeSetup"]["setupTask"] == {"commandLine": "echo hi",
                                               "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}


@pytest.mark.parametrize("flags", [ClusterFlags(setup_task="echo hi"), ClusterFlags(setup_task_output="/out")])
def test_setup_task_needs_command_and_output(flags: ClusterFlags) -> None:
    with pytest.raises(UserError):
        cluster(flags=flags)


def test_flags_override_file_and_keep_the_rest() -> None:
    config = {"properties": {"vmSize": "STANDARD_D1", "vmPriority": "dedicated",
                             "scaleSettings": {"manual": {"targetNodeCount": 5}},
                             "nodeSetup": {"setupTask": {"commandLine": "old", "runElevated": True}}}}
    original = copy.deepcopy(config)
    props = cluster(config, ClusterFlags(vm_size="STANDARD_NC12", setup_task="new", setup_task_output="/o"))
    assert props["vmSize"] == "STANDARD_NC12"
    assert props["vmPriority"] == "dedicated"
    assert props["scaleSettings"] == {"manual": {"targetNodeCount": 5}}
    assert props["nodeSetup"]["setupTask"] == {"commandLine": "new", "runElevated": True, "stdOutErrPathPrefix": "/o"}
    assert config == original


def test_mount_flags_appended_to_file_volumes() -> None:
    mine = {"accountName": "other", "azureFileUrl": "https://other.file.core.windows.net/s",
            "credentials": {"accountKey": "k"}, "relativeMountPath": "mine"}
    config = {"properties": {"nodeSetup": {"mountVolumes": {"azureFileShares": [mine]}}}}
    original = copy.deepcopy(config)
    mounts = MountFlags(afs_name="share", bfs_name="cont", bfs_mount_path="b", nfs="/fileservers/fs")
    volumes = cluster(config, mounts=mounts)["nodeSetup"]["mountVolumes"]
    assert volumes["azureFileShares"] == [
        mine,
        {"accountName": "acct", "azureFileUrl": "https://acct.file.core.windows.net/share",
         "credentials": {"accountKey": "secret"}, "relativeMountPath": "afs"}]
    assert volumes["azureBlobFileSystems"] == [{"accountName": "acct", "containerName": "cont",
                                                "credentials": {"accountKey": "secret"}, "relativeMountPath": "b"}]
    assert volumes["fileServers"] == [{"fileServer": {"id": "/fileservers/fs"}, "relativeMountPath": "nfs"}]
    assert config == original


@pytest.mark.parametrize("storage", [Storage(), Storage(account="acct"), Storage(key="secret")])
@pytest.mark.parametrize("mounts", [MountFlags(afs_name="share"), MountFlags(bfs_name="cont")])
def test_share_flags_need_storage_account(storage: Storage, mounts: MountFlags) -> None:
    with pytest.raises(UserError, match="AZURE_BATCHAI_STORAGE_ACCOUNT and AZURE_BATCHAI_STORAGE_KEY"):
        cluster(mounts=mounts, storage=storage)


PLACEHOLDER_VOLUMES = {"azureFileShares": [{
    "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
    "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/data",
    "credentials": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
    "relativeMountPath": "$AZ_BATCHAI_MOUNT_ROOT/afs"}]}


def test_placeholders_filled_in_cluster_file() -> None:
    config = {"properties": {"nodeSetup": {"mountVolumes": PLACEHOLDER_VOLUMES}}}
    share = cluster(config)["nodeSetup"]["mountVolumes"]["azureFileShares"][0]
    assert share == {"accountName": "acct", "azureFileUrl": "https://acct.file.core.windows.net/data",
                     "credentials": {"accountKey": "secret"}, "relativeMountPath": "$AZ_BATCHAI_MOUNT_ROOT/afs"}
    assert PLACEHOLDER_VOLUMES["azureFileShares"][0]["accountName"] == "<AZURE_BATCHAI_STORAGE_ACCOUNT>"


def test_placeholders_filled_in_job_file() -> None:
    share = job({"properties": {"mountVolumes": PLACEHOLDER_VOLUMES}})["mountVolumes"]["azureFileShares"][0]
    assert share["credentials"] == {"accountKey": "secret"}
    assert share["accountName"] == "acct"


@pytest.mark.parametrize(("storage", "variable"), [(Storage(account="acct"), "AZURE_BATCHAI_STORAGE_KEY"),
                                                   (Storage(key="secret"), "AZURE_BATCHAI_STORAGE_ACCOUNT")])
def test_missing_placeholder_value_is_user_error(storage: Storage, variable: str) -> None:
    config = {"properties": {"nodeSetup": {"mountVolumes": PLACEHOLDER_VOLUMES}}}
    with pytest.raises(UserError, match=variable):
        cluster(config, storage=storage)


def test_placeholders_outside_mount_volumes_left_alone() -> None:
    config = {"properties": {"cluster": {"id": "/c"}, "stdOutErrPathPrefix": "<AZURE_BATCHAI_STORAGE_KEY>"}}
    assert job(config, cluster_id=None, storage=Storage())["stdOutErrPathPrefix"] == "<AZURE_BATCHAI_STORAGE_KEY>"


def test_job_cluster_flag_overrides_file() -> None:
    config = {"properties": {"cluster": {"id": "/file"}, "nodeCount": 2}}
    assert job(config, cluster_id="/flag") == {"cluster": {"id": "/flag"}, "nodeCount": 2}
    assert job(config, cluster_id=None)["cluster"] == {"id": "/file"}


@pytest.mark.parametrize("config", [None, {"properties": {}}, {"properties": {"cluster": {}}}])
def test_job_without_cluster_is_user_error(config: dict[str, Any] | None) -> None:
    with pytest.raises(UserError, match="--cluster"):
        job(config, cluster_id=None)


def test_job_flags_override_file() -> None:
    config = {"properties": {"cluster": {"id": "/c"}, "nodeCount": 1, "schedulingPriority": "low",
                             "stdOutErrPathPrefix": "/old", "customToolkitSettings": {"commandLine": "run"}}}
    props = job(config, cluster_id=None, node_count=4, priority="high", prefix="$AZ_BATCHAI_MOUNT_ROOT/out")
    assert props == {"cluster": {"id": "/c"}, "nodeCount": 4, "schedulingPriority": "high",
                     "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/out",
                     "customToolkitSettings": {"commandLine": "run"}}


def test_job_level_mounts() -> None:
    volumes = job(mounts=MountFlags(afs_name="share", afs_mount_path="data", nfs="/fs"))["mountVolumes"]
    assert volumes["azureFileShares"][0]["azureFileUrl"] == "https://acct.file.core.windows.net/share"
    assert volumes["azureFileShares"][0]["relativeMountPath"] == "data"
    assert volumes["fileServers"] == [{"fileServer": {"id": "/fs"}, "relativeMountPath": "nfs"}]


def test_no_mounts_means_no_mount_volumes() -> None:
    assert "mountVolumes" not in job()
    assert "nodeSetup" not in cluster()


@pytest.mark.parametrize("config", [{}, {"cluster": {"id": "/c"}}, {"properties": ["x"]}])
def test_config_without_properties_object_is_user_error(config: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="properties"):
        job(config)
    with pytest.raises(UserError, match="properties"):
        cluster(config)


# -- mount volumes completed as az completed them ----------------------------------------------------
RECIPE_VOLUMES = {  # as every share-mounting recipe of Azure/BatchAI writes them
    "azureFileShares": [{"azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/logs",
                         "relativeMountPath": "logs"}],
    "azureBlobFileSystems": [{"accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>", "containerName": "data",
                              "relativeMountPath": "data"}]}


def test_recipe_volumes_get_account_names_and_keys() -> None:
    volumes = job({"properties": {"mountVolumes": RECIPE_VOLUMES}})["mountVolumes"]
    assert volumes == {
        "azureFileShares": [{"accountName": "acct", "azureFileUrl": "https://acct.file.core.windows.net/logs",
                             "credentials": {"accountKey": "secret"}, "relativeMountPath": "logs"}],
        "azureBlobFileSystems": [{"accountName": "acct", "containerName": "data",
                                  "credentials": {"accountKey": "secret"}, "relativeMountPath": "data"}]}
    assert "accountName" not in RECIPE_VOLUMES["azureFileShares"][0]  # the file's copy is left alone


def test_a_share_of_the_given_account_named_in_full_gets_its_key() -> None:
    share = {"azureFileUrl": "https://acct.file.core.windows.net/s", "relativeMountPath": "s"}
    cluster_share = cluster({"properties": {"nodeSetup": {"mountVolumes": {"azureFileShares": [share]}}}})[
        "nodeSetup"]["mountVolumes"]["azureFileShares"][0]
    assert cluster_share["accountName"] == "acct" and cluster_share["credentials"] == {"accountKey": "secret"}


def test_credentials_given_in_the_file_are_kept() -> None:
    reference = {"sourceVault": {"id": "/vaults/v"}, "secretUrl": "https://v/secrets/k"}
    shares = [{"azureFileUrl": "https://other.file.core.windows.net/s", "relativeMountPath": "a",
               "credentials": {"accountKey": "theirs"}},
              {"azureFileUrl": "https://acct.file.core.windows.net/s", "relativeMountPath": "b",
               "credentials": {"accountKeySecretReference": reference}}]
    got = job({"properties": {"mountVolumes": {"azureFileShares": shares}}}, storage=Storage())["mountVolumes"]
    assert [s["credentials"] for s in got["azureFileShares"]] == [{"accountKey": "theirs"},
                                                                 {"accountKeySecretReference": reference}]
    assert [s["accountName"] for s in got["azureFileShares"]] == ["other", "acct"]


@pytest.mark.parametrize("storage", [Storage(), Storage(account="acct"), Storage(account="else", key="k")])
def test_a_share_without_a_key_we_know_is_a_user_error(storage: Storage) -> None:
    share = {"azureFileUrl": "https://acct.file.core.windows.net/s", "relativeMountPath": "s"}
    with pytest.raises(UserError, match=r"mountVolumes.azureFileShares\[0\] \(storage account 'acct'\)"):
        job({"properties": {"mountVolumes": {"azureFileShares": [share]}}}, storage=storage)


def test_auto_storage_mounts_its_share_and_container() -> None:
    auto = Storage("baiauto", "k")
    volumes = cluster(mounts=MountFlags(auto_storage=auto), storage=Storage())["nodeSetup"]["mountVolumes"]
    assert volumes == {
        "azureFileShares": [{"accountName": "baiauto", "azureFileUrl": "https://baiauto.file.core.windows.net/"
                             "batchaishare", "credentials": {"accountKey": "k"}, "relativeMountPath": "autoafs"}],
        "azureBlobFileSystems": [{"accountName": "baiauto", "containerName": "batchaicontainer",
                                  "credentials": {"accountKey": "k"}, "relativeMountPath": "autobfs"}]}
