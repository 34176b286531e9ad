"""Volumes resolved from Batch AI's mountVolumes, their wire form, local folders and `locate`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from shared.volumes import (
    AZURE_BLOB,
    AZURE_FILE_SHARE,
    FILE_SERVER_KIND,
    KEY_VAULT_PROBLEM,
    UNMANAGED,
    Location,
    Volume,
    expand,
    local_folder,
    locate,
    volumes_of,
)

KEY = "c2VjcmV0LWtleQ=="
FS_ID = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/fileServers/fs1"
FS_DOC = {"id": "fileserver|rg|ws|fs1", "resource": {"id": FS_ID, "properties": {
    "mountSettings": {"mountPoint": "/mnt/data", "fileServerInternalIP": "10.0.0.4"}}}}

MOUNT_VOLUMES: dict[str, Any] = {
    "azureFileShares": [{"accountName": "acct", "azureFileUrl": "https://acct.file.core.windows.net/share1",
                         "credentials": {"accountKey": KEY}, "relativeMountPath": "afs", "fileMode": "0644"}],
    "azureBlobFileSystems": [{"accountName": "acct", "containerName": "data", "credentials": {"accountKey": KEY},
                              "relativeMountPath": "bfs", "mountOptions": "-o attr_timeout=240"}],
    "fileServers": [{"fileServer": {"id": FS_ID}, "sourceDirectory": "/projects", "relativeMountPath": "nfs",
                     "mountOptions": "rw"}],
    "unmanagedFileSystems": [{"mountCommand": "mount -t glusterfs 10.0.0.5:/gv0", "relativeMountPath": "gfs"}],
}


def lookup(arm_id: str) -> dict[str, Any] | None:
    return FS_DOC if arm_id == FS_ID else None


def test_volumes_of_resolves_every_kind() -> None:
    afs, blob, nfs, gfs = volumes_of(MOUNT_VOLUMES, lookup)
    assert afs == Volume(AZURE_FILE_SHARE, "afs", account="acct", key=KEY, share="share1",
                         share_url="https://acct.file.core.windows.net/share1", file_mode="0644")
    assert blob == Volume(AZURE_BLOB, "bfs", account="acct", key=KEY, container="data",
                          mount_options="-o attr_timeout=240")
    assert nfs == Volume(FILE_SERVER_KIND, "nfs", server="fileserver|rg|ws|fs1", server_address="10.0.0.4",
                         export_path="/mnt/data", source_directory="/projects", mount_options="rw")
    assert gfs == Volume(UNMANAGED, "gfs", mount_command="mount -t glusterfs 10.0.0.5:/gv0")


def test_nothing_to_mount() -> None:
    assert volumes_of(None, lookup) == []
    assert volumes_of({}, lookup) == []


def test_file_server_resource_envelope_is_accepted_too() -> None:
    spec = {"fileServers": [{"fileServer": {"id": FS_ID}, "relativeMountPath": "nfs"}]}
    (volume,) = volumes_of(spec, lambda _id: FS_DOC["resource"])
    assert (volume.server_address, volume.export_path, volume.source_directory) == ("10.0.0.4", "/mnt/data", "")


def test_a_missing_file_server_names_the_field() -> None:
    other = FS_ID.replace("fs1", "gone")
    spec = {"fileServers": [MOUNT_VOLUMES["fileServers"][0], {"fileServer": {"id": other}, "relativeMountPath": "x"}]}
    with pytest.raises(ValueError, match=r"nodeSetup\.mountVolumes\.fileServers\[1\]\.fileServer\.id.*does not exist"):
        volumes_of(spec, lookup, where="nodeSetup.mountVolumes")


def test_a_file_server_id_of_another_kind_is_refused() -> None:
    spec = {"fileServers": [{"fileServer": {"id": "/subscriptions/s/resourceGroups/rg"}, "relativeMountPath": "x"}]}
    with pytest.raises(ValueError, match=r"mountVolumes\.fileServers\[0\]\.fileServer\.id"):
        volumes_of(spec, lookup)


def test_a_source_directory_may_not_climb_out() -> None:
    spec = {"fileServers": [{"fileServer": {"id": FS_ID}, "sourceDirectory": "a/../../etc", "relativeMountPath": "x"}]}
    with pytest.raises(ValueError, match=r"fileServers\[0\]\.sourceDirectory"):
        volumes_of(spec, lookup)


def test_a_share_url_without_a_share_names_the_field() -> None:
    share = dict(MOUNT_VOLUMES["azureFileShares"][0], azureFileUrl="https://acct.file.core.windows.net/")
    with pytest.raises(ValueError, match=r"azureFileShares\[0\]\.azureFileUrl"):
        volumes_of({"azureFileShares": [share]}, lookup)


def test_a_key_vault_reference_travels_without_key_and_with_a_problem() -> None:
    reference = {"accountKeySecretReference": {"sourceVault": {"id": "/vault"}, "secretUrl": "https://v/s"}}
    blob = dict(MOUNT_VOLUMES["azureBlobFileSystems"][0], credentials=reference)
    (volume,) = volumes_of({"azureBlobFileSystems": [blob]}, lookup)
    assert volume.key == ""
    assert volume.problem == KEY_VAULT_PROBLEM
    assert "accountKeySecretReference" in volume.problem


def test_wire_round_trip_keeps_the_key() -> None:
    for volume in volumes_of(MOUNT_VOLUMES, lookup):
        wire = volume.to_wire()
        assert Volume.from_wire(wire) == volume
    assert volumes_of(MOUNT_VOLUMES, lookup)[0].to_wire() == {
        "kind": "azureFileShare", "relativeMountPath": "afs", "account": "acct", "key": KEY, "share": "share1",
        "shareUrl": "https://acct.file.core.windows.net/share1", "fileMode": "0644"}


def test_from_wire_refuses_unknown_kinds_and_ignores_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown volume kind"):
        Volume.from_wire({"kind": "floppy", "relativeMountPath": "a"})
    with pytest.raises(ValueError, match="relativeMountPath"):
        Volume.from_wire({"kind": UNMANAGED})
    volume = Volume.from_wire({"kind": UNMANAGED, "relativeMountPath": "a", "mountCommand": "m", "future": 1})
    assert volume == Volume(UNMANAGED, "a", mount_command="m")


def test_repr_hides_the_key() -> None:
    for volume in volumes_of(MOUNT_VOLUMES, lookup):
        assert KEY not in repr(volume) and KEY not in str(volume)
    assert repr(volumes_of(MOUNT_VOLUMES, lookup)[1]) == (
        "Volume(kind='azureBlob', relative_mount_path='bfs', account='acct', container='data', "
        "mount_options='-o attr_timeout=240')")


def test_local_folders(tmp_path: Path) -> None:
    afs, blob, nfs, gfs = volumes_of(MOUNT_VOLUMES, lookup)
    assert local_folder(afs, tmp_path) == tmp_path / "fileshares" / "acct" / "share1"
    assert local_folder(nfs, tmp_path) == tmp_path / "fileservers" / "fileserver|rg|ws|fs1" / "projects"
    whole = Volume(FILE_SERVER_KIND, "n", server="fileserver|rg|ws|fs1", source_directory="/")
    assert local_folder(whole, tmp_path) == tmp_path / "fileservers" / "fileserver|rg|ws|fs1"
    digest = hashlib.sha256(b"mount -t glusterfs 10.0.0.5:/gv0").hexdigest()
    assert local_folder(gfs, tmp_path) == tmp_path / "unmanaged" / digest[:16]
    assert local_folder(gfs, tmp_path) != local_folder(Volume(UNMANAGED, "g", mount_command="other"), tmp_path)
    with pytest.raises(ValueError, match="blob"):
        local_folder(blob, tmp_path)


def test_local_folders_refuse_names_that_leave_the_storage_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="folder name"):
        local_folder(Volume(AZURE_FILE_SHARE, "a", account="..", share="s"), tmp_path)
    with pytest.raises(ValueError, match="leaves"):
        local_folder(Volume(FILE_SERVER_KIND, "a", server="s", source_directory="../x"), tmp_path)


def test_expand_like_a_shell() -> None:
    env = {"A": "/a", "B_2": "b"}
    assert expand("$A/x/${B_2}y/$B_2", env) == "/a/x/by/b"
    assert expand("$UNKNOWN/${NOPE}/$A", env) == "$UNKNOWN/${NOPE}//a"
    assert expand("$A", {"A": "$B_2"}) == "$B_2"  # values are not expanded again


# --- locate -----------------------------------------------------------------------------------------

CLUSTER = [Volume(AZURE_FILE_SHARE, "afs", account="a", share="s"), Volume(AZURE_BLOB, "data", container="c"),
           Volume(AZURE_BLOB, "data/deep", container="d")]
JOB = [Volume(AZURE_BLOB, "b", container="j")]


def test_locate_on_a_cluster_volume() -> None:
    assert locate("$AZ_BATCHAI_MOUNT_ROOT/afs/out", {}, CLUSTER, JOB) == Location(CLUSTER[0], "cluster", "out")
    assert locate("$AZ_BATCHAI_MOUNT_ROOT/afs", {}, CLUSTER, JOB) == Location(CLUSTER[0], "cluster", "")


def test_locate_on_a_job_volume_with_braces() -> None:
    location = locate("${AZ_BATCHAI_JOB_MOUNT_ROOT}/b/x//y/", {}, CLUSTER, JOB)
    assert location == Location(JOB[0], "job", "x/y")
    assert location.on_volume


def test_the_deepest_mount_path_wins() -> None:
    assert locate("$AZ_BATCHAI_MOUNT_ROOT/data/deep/x", {}, CLUSTER, JOB).volume == CLUSTER[2]
    assert locate("$AZ_BATCHAI_MOUNT_ROOT/data/deeper/x", {}, CLUSTER, JOB) == Location(CLUSTER[1], "cluster",
                                                                                       "deeper/x")


def test_locate_through_a_user_variable() -> None:
    env = {"OUT": "$AZ_BATCHAI_MOUNT_ROOT/afs", "PLAIN": "/srv/out"}
    # the job's variables hold text: a shell does not expand a value again
    with pytest.raises(ValueError, match="not an absolute path"):
        locate("$OUT/x", env, CLUSTER, JOB)
    assert locate("${PLAIN}/models", env, CLUSTER, JOB) == Location(absolute="/srv/out/models")
    assert locate("$AZ_BATCHAI_MOUNT_ROOT/$SUB/x", {"SUB": "afs"}, CLUSTER, JOB) == Location(CLUSTER[0], "cluster",
                                                                                            "x")


def test_a_variable_the_job_sets_overrides_the_root() -> None:
    env = {"AZ_BATCHAI_MOUNT_ROOT": "/elsewhere"}
    assert locate("$AZ_BATCHAI_MOUNT_ROOT/afs", env, CLUSTER, JOB) == Location(absolute="/elsewhere/afs")


def test_a_plain_path() -> None:
    location = locate("/tmp/../srv//out", {}, CLUSTER, JOB)
    assert location == Location(absolute="/srv/out")
    assert not location.on_volume


def test_dot_dot_may_move_between_volumes_but_not_leave_the_root() -> None:
    assert locate("$AZ_BATCHAI_MOUNT_ROOT/afs/../data/x", {}, CLUSTER, JOB) == Location(CLUSTER[1], "cluster", "x")
    with pytest.raises(ValueError, match=r"leaves \$AZ_BATCHAI_MOUNT_ROOT"):
        locate("$AZ_BATCHAI_MOUNT_ROOT/afs/../../etc/passwd", {}, CLUSTER, JOB)
    with pytest.raises(ValueError, match=r"leaves \$AZ_BATCHAI_JOB_MOUNT_ROOT"):
        locate("$AZ_BATCHAI_JOB_MOUNT_ROOT/..", {}, CLUSTER, JOB)


def test_paths_under_a_root_but_on_no_volume_are_refused() -> None:
    with pytest.raises(ValueError, match="none of the cluster's volumes"):
        locate("$AZ_BATCHAI_MOUNT_ROOT/nothing/x", {}, CLUSTER, JOB)
    with pytest.raises(ValueError, match="none of the job's volumes"):
        locate("$AZ_BATCHAI_JOB_MOUNT_ROOT", {}, CLUSTER, JOB)
    with pytest.raises(ValueError, match="none of the job's volumes"):
        locate("$AZ_BATCHAI_JOB_MOUNT_ROOT/afs", {}, CLUSTER, JOB)  # a cluster volume's name, the wrong root


def test_a_root_in_the_middle_of_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="can only start a path"):
        locate("/x$AZ_BATCHAI_MOUNT_ROOT/afs", {}, CLUSTER, JOB)
