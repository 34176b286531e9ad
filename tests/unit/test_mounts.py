"""Mounting volumes: the VM commands (exact argv, key never shown) and the local pool's links."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from node_bootstrap.mounts import (
    REDACTED,
    Command,
    LocalMounter,
    MountFailed,
    Mounts,
    VmMounter,
    blobfuse2_config,
    blobfuse2_files,
    blobfuse2_mount,
    cifs_mount,
    mount_local,
    nfs_mount,
    unmanaged_mount,
    run_command,
    unmount_command,
)
from shared.volumes import AZURE_BLOB, AZURE_FILE_SHARE, FILE_SERVER_KIND, KEY_VAULT_PROBLEM, UNMANAGED, Volume

KEY = "c2VjcmV0LWtleQ+/=="
AFS = Volume(AZURE_FILE_SHARE, "afs", account="acct", key=KEY, share="share1",
             share_url="https://acct.file.core.windows.net/share1", file_mode="0644", directory_mode="0755")
BLOB = Volume(AZURE_BLOB, "bfs", account="acct", key=KEY, container="data", mount_options="-o attr_timeout=240")
NFS = Volume(FILE_SERVER_KIND, "nfs", server="fileserver|rg|ws|fs1", server_address="10.0.0.4",
             export_path="/mnt/data", source_directory="/projects/a")
GLUSTER = Volume(UNMANAGED, "gfs", mount_command="mount -t glusterfs 10.0.0.5:/gv0")
MNT = Path("/mnt/batch/tasks/shared/LS_root/mounts")


# --- VM mode: commands --------------------------------------------------------------------------------


def test_cifs_argv_and_its_redacted_forms() -> None:
    command = cifs_mount(AFS, MNT / "afs")
    assert command.argv == (
        "mount", "-t", "cifs", "//acct.file.core.windows.net/share1", str(MNT / "afs"), "-o",
        f"vers=3.0,username=acct,password={KEY},dir_mode=0755,file_mode=0644,serverino")
    assert command.display == (f"mount -t cifs //acct.file.core.windows.net/share1 {MNT}/afs -o "
                               "vers=3.0,username=acct,password=***,dir_mode=0755,file_mode=0644,serverino")
    assert KEY not in repr(command)
    assert command.redact(f"error: bad password {KEY}") == f"error: bad password {REDACTED}"


def test_cifs_takes_the_host_of_the_share_url() -> None:
    china = Volume(AZURE_FILE_SHARE, "a", account="acct", key=KEY, share="s",
                   share_url="https://acct.file.core.chinacloudapi.cn/s")
    assert cifs_mount(china, Path("/m")).argv[3] == "//acct.file.core.chinacloudapi.cn/s"
    default_modes = cifs_mount(Volume(AZURE_FILE_SHARE, "a", account="acct", key=KEY, share="s"), Path("/m"))
    assert default_modes.argv[3] == "//acct.file.core.windows.net/s"
    assert "dir_mode=0777,file_mode=0777" in default_modes.argv[-1]


def test_blobfuse2_argv_keeps_the_key_in_a_private_config(tmp_path: Path) -> None:
    config, cache = blobfuse2_files(MNT / "bfs", tmp_path)
    command = blobfuse2_mount(BLOB, MNT / "bfs", tmp_path)
    assert command.argv == ("blobfuse2", "mount", str(MNT / "bfs"), f"--config-file={config}", "-o", "attr_timeout=240")
    assert KEY not in command.display and KEY not in repr(command)
    assert command.files == ((config, blobfuse2_config(BLOB, cache)),)
    assert command.folders == (MNT / "bfs", cache)
    assert config.parent == cache.parent == tmp_path / "blobfuse2"
    assert blobfuse2_files(MNT / "other", tmp_path)[0] != config


def test_blobfuse2_config_text() -> None:
    text = blobfuse2_config(BLOB, Path("/var/cache/bf"))
    assert text == "\n".join((
        "allow-other: true",
        "logging:",
        "  type: syslog",
        "  level: log_warning",
        "components:",
        "  - libfuse",
        "  - file_cache",
        "  - attr_cache",
        "  - azstorage",
        "file_cache:",
        '  path: "/var/cache/bf"',
        "  timeout-sec: 120",
        "attr_cache:",
        "  timeout-sec: 7200",
        "azstorage:",
        "  type: block",
        '  account-name: "acct"',
        f'  account-key: "{KEY}"',
        "  mode: key",
        '  container: "data"',
        "",
    ))
    parsed = yaml.safe_load(text)
    assert parsed["azstorage"] == {"type": "block", "account-name": "acct", "account-key": KEY, "mode": "key",
                                   "container": "data"}
    assert parsed["file_cache"]["path"] == "/var/cache/bf"


def test_nfs_argv() -> None:
    assert nfs_mount(NFS, MNT / "nfs").argv == (
        "mount", "-t", "nfs", "10.0.0.4:/mnt/data/projects/a", str(MNT / "nfs"), "-o", "defaults")
    whole = Volume(FILE_SERVER_KIND, "n", server="s", server_address="10.0.0.4", export_path="/mnt/data",
                   mount_options="rw,hard")
    assert nfs_mount(whole, Path("/m")).argv == ("mount", "-t", "nfs", "10.0.0.4:/mnt/data", "/m", "-o", "rw,hard")
    flags = Volume(FILE_SERVER_KIND, "n", server="s", server_address="h", export_path="/e", mount_options="-o ro -v")
    assert nfs_mount(flags, Path("/m")).argv == ("mount", "-t", "nfs", "h:/e", "/m", "-o", "ro", "-v")


def test_unmanaged_appends_the_mount_path() -> None:
    assert unmanaged_mount(GLUSTER, MNT / "gfs").argv == (
        "bash", "-c", f"mount -t glusterfs 10.0.0.5:/gv0 {MNT}/gfs")
    spaced = unmanaged_mount(GLUSTER, Path("/m/with space"))
    assert spaced.argv[-1] == "mount -t glusterfs 10.0.0.5:/gv0 '/m/with space'"


def test_unmount_commands() -> None:
    assert unmount_command(BLOB, Path("/m/b")).argv == ("blobfuse2", "unmount", "/m/b")
    for volume in (AFS, NFS, GLUSTER):
        assert unmount_command(volume, Path("/m/x")).argv == ("umount", "/m/x")


# --- VM mode: running them ----------------------------------------------------------------------------


class FakeRunner:
    """Records argv; fails with `output` (which may echo the argv) when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        self.calls.append(tuple(argv))
        if self.fail:
            return 32, f"mount error(13): Permission denied for {' '.join(argv)}\n"
        return 0, ""


def vm_mounts(tmp_path: Path, run: FakeRunner, mounted: set[Path] | None = None) -> Mounts:
    known = mounted if mounted is not None else set()
    return Mounts(tmp_path / "mounts", VmMounter(tmp_path / "work", run, is_mount=lambda p: p in known))


def test_vm_mounts_run_each_command_and_write_the_config_privately(tmp_path: Path) -> None:
    run = FakeRunner()
    mounts = vm_mounts(tmp_path, run)
    assert mounts.mount_all([AFS, BLOB, NFS, GLUSTER]) == []
    assert [call[0:2] for call in run.calls] == [("mount", "-t"), ("blobfuse2", "mount"), ("mount", "-t"),
                                                 ("bash", "-c")]
    config, cache = blobfuse2_files(tmp_path / "mounts" / "bfs", tmp_path / "work")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f'account-key: "{KEY}"' in config.read_text()
    assert cache.is_dir() and (tmp_path / "mounts" / "afs").is_dir()
    assert mounts.mounted == [AFS, BLOB, NFS, GLUSTER]


def test_vm_mount_skips_what_is_already_mounted(tmp_path: Path) -> None:
    run = FakeRunner()
    mounts = vm_mounts(tmp_path, run, mounted={tmp_path / "mounts" / "afs"})
    assert mounts.mount_all([AFS]) == []
    assert run.calls == []


def test_vm_mount_errors_name_the_volume_and_never_the_key(tmp_path: Path) -> None:
    errors = vm_mounts(tmp_path, FakeRunner(fail=True)).mount_all([AFS, NFS])
    assert [e.relative_mount_path for e in errors] == ["afs", "nfs"]
    assert str(errors[0]).startswith("cannot mount volume 'afs' (azureFileShare): `mount -t cifs")
    assert "exited with code 32" in str(errors[0]) and "Permission denied" in str(errors[0])
    assert "password=***" in str(errors[0])
    assert all(KEY not in str(e) and KEY not in repr(e) for e in errors)


def test_vm_unmount_runs_umount_and_forgets_the_blob_config(tmp_path: Path) -> None:
    run = FakeRunner()
    mounted: set[Path] = set()
    mounts = vm_mounts(tmp_path, run, mounted)
    assert mounts.mount_all([AFS, BLOB]) == []
    mounted.update({tmp_path / "mounts" / "afs", tmp_path / "mounts" / "bfs"})
    run.calls.clear()
    assert mounts.unmount_all() == []
    assert sorted(run.calls) == [("blobfuse2", "unmount", str(tmp_path / "mounts" / "bfs")),
                                 ("umount", str(tmp_path / "mounts" / "afs"))]
    assert not blobfuse2_files(tmp_path / "mounts" / "bfs", tmp_path / "work")[0].exists()
    assert mounts.mounted == []


def test_a_missing_tool_is_a_clear_error(tmp_path: Path) -> None:
    def missing(argv: Sequence[str]) -> tuple[int, str]:
        return 127, f"{argv[0]} is not installed on this node"

    mounts = Mounts(tmp_path, VmMounter(tmp_path / "w", missing, is_mount=lambda _p: False))
    (error,) = mounts.mount_all([BLOB])
    assert "blobfuse2 is not installed on this node" in str(error) and KEY not in str(error)


# --- local mode ---------------------------------------------------------------------------------------


def test_local_mount_links_to_the_share_folder(tmp_path: Path) -> None:
    storage, root = tmp_path / "storage", tmp_path / "node" / "mounts"
    mounts = Mounts.local(root, storage)
    assert mounts.mount_all([AFS, NFS, GLUSTER]) == []
    share = storage / "fileshares" / "acct" / "share1"
    assert (root / "afs").is_symlink() and (root / "afs").resolve() == share.resolve()
    assert (root / "nfs").resolve() == (storage / "fileservers" / "fileserver|rg|ws|fs1" / "projects" / "a").resolve()
    (root / "afs" / "model.bin").write_bytes(b"weights")
    assert (share / "model.bin").read_bytes() == b"weights"


def test_two_nodes_see_the_same_share(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    Mounts.local(tmp_path / "n1", storage).mount_all([AFS])
    Mounts.local(tmp_path / "n2", storage).mount_all([AFS])
    (tmp_path / "n1" / "afs" / "x.txt").write_text("hello")
    assert (tmp_path / "n2" / "afs" / "x.txt").read_text() == "hello"


def test_a_stale_link_is_replaced(tmp_path: Path) -> None:
    mount_path = tmp_path / "mounts" / "afs"
    mount_path.parent.mkdir(parents=True)
    mount_path.symlink_to(tmp_path / "somewhere-else")
    mount_local(AFS, mount_path, tmp_path / "storage", None)
    assert mount_path.resolve() == (tmp_path / "storage" / "fileshares" / "acct" / "share1").resolve()
    mount_local(AFS, mount_path, tmp_path / "storage", None)  # again: nothing changes
    assert mount_path.is_symlink()
    assert [p.name for p in mount_path.parent.iterdir()] == ["afs"]  # no temporary link left behind


def test_an_empty_folder_is_replaced_but_files_are_never_deleted(tmp_path: Path) -> None:
    mount_path = tmp_path / "afs"
    mount_path.mkdir()
    mount_local(AFS, mount_path, tmp_path / "storage", None)
    assert mount_path.is_symlink()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("data")
    with pytest.raises(MountFailed, match="files in it"):
        mount_local(AFS, busy, tmp_path / "storage", None)
    assert (busy / "keep.txt").read_text() == "data"


def test_a_blob_container_links_into_a_local_folder_store(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    mounts = Mounts.local(tmp_path / "mounts", tmp_path / "storage", blob_link=lambda a, c: blobs / a / c)
    assert mounts.mount_all([BLOB]) == []
    (tmp_path / "mounts" / "bfs" / "out.txt").write_text("result")
    assert (blobs / "acct" / "data" / "out.txt").read_text() == "result"


class FakeSync:
    def __init__(self, volume: Volume, folder: Path, log: list[str]) -> None:
        self.volume, self.folder, self.log = volume, folder, log

    def pull(self) -> None:
        self.log.append(f"pull {self.volume.container} into {self.folder.name}")
        (self.folder / "input.txt").write_text("from the store")

    def push(self) -> None:
        self.log.append(f"push {sorted(p.name for p in self.folder.iterdir())}")


def test_with_azurite_a_blob_container_is_a_synced_folder(tmp_path: Path) -> None:
    log: list[str] = []
    root = tmp_path / "mounts"
    mounts = Mounts.local(root, tmp_path / "storage", blob_sync=lambda v, f: FakeSync(v, f, log))
    assert mounts.mount_all([BLOB]) == []
    folder = root / "bfs"
    assert folder.is_dir() and not folder.is_symlink()
    assert (folder / "input.txt").read_text() == "from the store"
    (folder / "output.txt").write_text("x")
    assert mounts.push() == []
    assert mounts.unmount_all() == []
    assert log == ["pull data into bfs", "push ['input.txt', 'output.txt']", "push ['input.txt', 'output.txt']"]
    assert not folder.exists()


def test_without_any_blob_store_a_container_cannot_be_mounted(tmp_path: Path) -> None:
    (error,) = Mounts.local(tmp_path / "m", tmp_path / "s").mount_all([BLOB])
    assert str(error) == ("cannot mount volume 'bfs' (azureBlob): "
                          "this pool has no blob store to keep the container's files in")


def test_local_unmount_removes_links_and_keeps_the_files(tmp_path: Path) -> None:
    storage, root = tmp_path / "storage", tmp_path / "mounts"
    mounts = Mounts.local(root, storage)
    mounts.mount_all([AFS, GLUSTER])
    (root / "afs" / "kept.txt").write_text("still here")
    assert mounts.unmount_all() == []
    assert not (root / "afs").exists() and not (root / "afs").is_symlink() and not (root / "gfs").is_symlink()
    assert (storage / "fileshares" / "acct" / "share1" / "kept.txt").read_text() == "still here"
    assert mounts.mounted == []


def test_unmount_of_given_volumes_after_a_restart(tmp_path: Path) -> None:
    storage, root = tmp_path / "storage", tmp_path / "mounts"
    Mounts.local(root, storage).mount_all([AFS])
    assert Mounts.local(root, storage).unmount_all([AFS]) == []
    assert not (root / "afs").is_symlink()


def test_nested_volumes_mount_outer_first(tmp_path: Path) -> None:
    outer = Volume(UNMANAGED, "data", mount_command="outer")
    inner = Volume(UNMANAGED, "data/inner", mount_command="inner")
    mounts = Mounts.local(tmp_path / "m", tmp_path / "s")
    assert mounts.mount_all([inner, outer]) == []
    assert (tmp_path / "m" / "data" / "inner").is_symlink()
    assert mounts.unmount_all() == []
    assert not (tmp_path / "m" / "data").is_symlink()


# --- errors -------------------------------------------------------------------------------------------


def test_a_key_vault_volume_reports_its_problem_without_mounting(tmp_path: Path) -> None:
    run = FakeRunner()
    vault = Volume(AZURE_FILE_SHARE, "afs", account="acct", share="s", problem=KEY_VAULT_PROBLEM)
    (error,) = vm_mounts(tmp_path, run).mount_all([vault])
    assert str(error) == f"cannot mount volume 'afs' (azureFileShare): {KEY_VAULT_PROBLEM}"
    assert run.calls == []


def test_any_failure_is_scrubbed_of_the_key(tmp_path: Path) -> None:
    class Leaky(LocalMounter):
        def mount(self, volume: Volume, path: Path) -> None:
            raise OSError(f"could not reach acct with {volume.key}")

    (error,) = Mounts(tmp_path, Leaky(tmp_path)).mount_all([AFS])
    assert str(error) == f"cannot mount volume 'afs' (azureFileShare): could not reach acct with {REDACTED}"


def test_a_mount_path_that_leaves_the_root_is_refused(tmp_path: Path) -> None:
    escaping = Volume(UNMANAGED, "a/../../etc", mount_command="m")
    (error,) = Mounts.local(tmp_path / "m", tmp_path / "s").mount_all([escaping])
    assert "cannot mount volume 'a/../../etc'" in str(error) and "below the mount root" in str(error)
    assert not (tmp_path / "etc").exists()


def test_command_without_secrets_displays_as_is() -> None:
    assert Command(("umount", "/m x")).display == "umount '/m x'"


def test_run_command_reports_code_output_and_missing_tools() -> None:
    assert run_command(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]) == (3, "to-out\nto-err\n")
    assert run_command(["no-such-tool-here", "x"]) == (127, "no-such-tool-here is not installed on this node")
    assert run_command(["sleep", "5"], timeout=0.2) == (124, "no answer within 0.2 s")
