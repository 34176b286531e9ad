"""Mounting a node's volumes (shared/volumes.py) under a mount root, in one of two modes.

VM mode (real VMs): real mounts — Azure Files over SMB (`mount -t cifs`), blob containers through
blobfuse2, file servers over NFS, and the user's own command for unmanaged file systems. The
builders are pure and return a `Command` whose `display` form is safe to log (the key redacted).

Local mode (the one-machine pool): a mount is a symbolic link to the folder that stands for the
share (`shared.volumes.local_folder`), so every node and job naming a share sees the same files.
A blob container links into a local folder blob store; with Azurite, it is a real folder that a
syncer (node_bootstrap/blob_sync.py, passed in as a factory) pulls before and pushes after.

`Mounts` mounts a list of volumes under one root and reports each failure as a `MountError` that
names the volume's relativeMountPath and never contains its key.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from shared.volumes import AZURE_BLOB, AZURE_FILE_SHARE, FILE_SERVER_KIND, Volume, local_folder

REDACTED = "***"
MOUNT_TIMEOUT_SECONDS = 120.0  # a mount that hangs this long (unreachable server) is a failure
NFS_DEFAULT_OPTIONS = "defaults"
_OUTPUT_TAIL = 500  # characters of a failed command's output kept in its error


class MountFailed(Exception):
    """A volume could not be mounted or unmounted; the message is already free of secrets."""


# --------------------------------------------------------------------------------------------------
# VM mode: commands
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """An argv to run as root, with the folders and private files (0600) it needs first.

    `secrets` are the values that `display` and `redact` replace: never log `argv` itself.
    """

    argv: tuple[str, ...]
    folders: tuple[Path, ...] = ()
    files: tuple[tuple[Path, str], ...] = field(default=(), repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def display(self) -> str:
        """The command line as it can be logged or shown in an error."""
        return self.redact(shlex.join(self.argv))

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        return f"Command({self.display})"


def cifs_mount(volume: Volume, path: Path) -> Command:
    """Azure Files over SMB 3.0; the share's host comes from azureFileUrl (sovereign clouds)."""
    host = urlsplit(volume.share_url).hostname or f"{volume.account}.file.core.windows.net"
    options = ",".join((
        "vers=3.0",
        f"username={volume.account}",
        f"password={volume.key}",
        f"dir_mode={volume.directory_mode}",
        f"file_mode={volume.file_mode}",
        "serverino",
    ))
    argv = ("mount", "-t", "cifs", f"//{host}/{volume.share}", str(path), "-o", options)
    return Command(argv, folders=(path,), secrets=(volume.key,))


def blobfuse2_files(path: Path, work_dir: Path) -> tuple[Path, Path]:
    """(config file, file cache folder) of the blob container mounted at `path`: one pair per
    mount path, so that two containers never share a cache."""
    name = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    folder = work_dir / "blobfuse2"
    return folder / f"{name}.yaml", folder / f"{name}.cache"


def blobfuse2_config(volume: Volume, cache: Path) -> str:
    """blobfuse2's YAML config: caching mode, account key auth. Values are JSON strings (valid
    YAML) so that no key or name can break the document."""
    def q(value: str) -> str:
        return json.dumps(value)

    return "\n".join((
        "allow-other: true",  # the job may run as another user, or in a container
        "logging:",
        "  type: syslog",
        "  level: log_warning",
        "components:",
        "  - libfuse",
        "  - file_cache",
        "  - attr_cache",
        "  - azstorage",
        "file_cache:",
        f"  path: {q(str(cache))}",
        "  timeout-sec: 120",
        "attr_cache:",
        "  timeout-sec: 7200",
        "azstorage:",
        "  type: block",
        f"  account-name: {q(volume.account)}",
        f"  account-key: {q(volume.key)}",
        "  mode: key",
        f"  container: {q(volume.container)}",
        "",
    ))


def blobfuse2_mount(volume: Volume, path: Path, work_dir: Path) -> Command:
    """blobfuse2 with a generated config file (the key stays out of argv); the volume's
    mountOptions are appended as given (e.g. `-o attr_timeout=240`)."""
    config, cache = blobfuse2_files(path, work_dir)
    argv = ("blobfuse2", "mount", str(path), f"--config-file={config}", *shlex.split(volume.mount_options))
    return Command(argv, folders=(path, cache), files=((config, blobfuse2_config(volume, cache)),),
                   secrets=(volume.key,))


def nfs_mount(volume: Volume, path: Path) -> Command:
    """NFS from a file server: `<address>:<mountPoint>/<sourceDirectory>`. mountOptions that
    start with '-' are command-line flags; otherwise they are the `-o` list."""
    source = posixpath.normpath(posixpath.join(volume.export_path, volume.source_directory.lstrip("/")))
    options = volume.mount_options.strip()
    tail = shlex.split(options) if options.startswith("-") else ["-o", options or NFS_DEFAULT_OPTIONS]
    return Command(("mount", "-t", "nfs", f"{volume.server_address}:{source}", str(path), *tail), folders=(path,))


def unmanaged_mount(volume: Volume, path: Path) -> Command:
    """The user's mountCommand with the mount path appended, as Batch AI did ("Batch AI will
    append mount path to the command on its own"), run by bash so the command may use shell syntax."""
    return Command(("bash", "-c", f"{volume.mount_command} {shlex.quote(str(path))}"), folders=(path,))


def mount_command(volume: Volume, path: Path, work_dir: Path) -> Command:
    """The command that mounts `volume` at `path` on a VM."""
    if volume.kind == AZURE_FILE_SHARE:
        return cifs_mount(volume, path)
    if volume.kind == AZURE_BLOB:
        return blobfuse2_mount(volume, path, work_dir)
    if volume.kind == FILE_SERVER_KIND:
        return nfs_mount(volume, path)
    return unmanaged_mount(volume, path)


def unmount_command(volume: Volume, path: Path) -> Command:
    """blobfuse2 unmounts its own FUSE mounts; everything else is a kernel mount."""
    if volume.kind == AZURE_BLOB:
        return Command(("blobfuse2", "unmount", str(path)))
    return Command(("umount", str(path)))


Runner = Callable[[Sequence[str]], tuple[int, str]]


def run_command(argv: Sequence[str], timeout: float = MOUNT_TIMEOUT_SECONDS) -> tuple[int, str]:
    """(exit code, stdout+stderr). Output goes to a file, not a pipe: blobfuse2 leaves a daemon
    behind that could hold a pipe open and make us wait for it."""
    with tempfile.TemporaryFile() as output:
        try:
            code = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False).returncode
        except FileNotFoundError:
            return 127, f"{argv[0]} is not installed on this node"
        except subprocess.TimeoutExpired:
            return 124, f"no answer within {timeout:g} s"
        output.seek(0)
        return code, output.read().decode(errors="replace")


def _write_private(path: Path, text: str) -> None:
    """A file only root can read: it holds a storage key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(path, 0o600)  # in case it existed with wider rights


class VmMounter:
    """Real mounts; `run` and `is_mount` are replaceable so tests need neither root nor servers."""

    def __init__(self, work_dir: Path, run: Runner = run_command,
                 is_mount: Callable[[Path], bool] = os.path.ismount) -> None:
        self.work_dir, self._run, self._is_mount = work_dir, run, is_mount

    def mount(self, volume: Volume, path: Path) -> None:
        if self._is_mount(path):
            return  # mounted before the agent restarted
        command = mount_command(volume, path, self.work_dir)
        for folder in command.folders:
            folder.mkdir(parents=True, exist_ok=True)
        for file, text in command.files:
            _write_private(file, text)
        self._check(command)

    def unmount(self, volume: Volume, path: Path) -> None:
        if self._is_mount(path):
            self._check(unmount_command(volume, path))
        if volume.kind == AZURE_BLOB:
            config, cache = blobfuse2_files(path, self.work_dir)
            config.unlink(missing_ok=True)
            shutil.rmtree(cache, ignore_errors=True)

    def push(self) -> None:
        """Nothing to do: real mounts write through."""

    def pull(self) -> None:
        """Nothing to do: real mounts read through."""

    def _check(self, command: Command) -> None:
        code, output = self._run(command.argv)
        if code != 0:
            tail = command.redact(output.strip())[-_OUTPUT_TAIL:] or "no output"
            raise MountFailed(f"`{command.display}` exited with code {code}: {tail}")


# --------------------------------------------------------------------------------------------------
# Local mode: links to folders
# --------------------------------------------------------------------------------------------------

BlobLink = Callable[[str, str], Path]
"""(account, container) -> the folder of that container in a local folder blob store."""


class BlobSyncer(Protocol):
    """What it returns (BlobSync: a count of files) is not used here."""

    def pull(self) -> object: ...

    def push(self) -> object: ...


BlobSyncFactory = Callable[[Volume, Path], BlobSyncer]
"""(volume, folder) -> a syncer between that folder and the volume's container (e.g. BlobSync)."""


def mount_local(volume: Volume, mount_path: Path, storage_dir: Path, blob_link: BlobLink | None) -> None:
    """Make `mount_path` show the volume's files: a link to its folder, or for a blob container
    without a local folder store (Azurite), a real folder that a syncer fills."""
    if volume.kind == AZURE_BLOB:
        if blob_link is None:
            _real_folder(mount_path)
            return
        target = blob_link(volume.account, volume.container)
    else:
        target = local_folder(volume, storage_dir)
    target.mkdir(parents=True, exist_ok=True)
    _link(mount_path, Path(os.path.abspath(target)))


def unmount_local(volume: Volume, mount_path: Path) -> None:
    """Remove the link (the share's folder stays), or the synced copy of a blob container."""
    if mount_path.is_symlink():
        mount_path.unlink()
    elif volume.kind == AZURE_BLOB and mount_path.is_dir():
        shutil.rmtree(mount_path)


def _link(mount_path: Path, target: Path) -> None:
    """Point `mount_path` at `target`, replacing a stale link atomically; never delete data."""
    mount_path.parent.mkdir(parents=True, exist_ok=True)
    if mount_path.is_symlink():
        if os.readlink(mount_path) == str(target):
            return
    elif mount_path.is_dir():
        if any(mount_path.iterdir()):
            raise MountFailed(f"{mount_path} is a folder with files in it; not replacing it with a link")
        mount_path.rmdir()
    elif mount_path.exists():
        raise MountFailed(f"{mount_path} is a file; not replacing it with a link")
    temporary = mount_path.with_name(f".{mount_path.name}.{os.getpid()}.link")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target, target_is_directory=True)
    os.replace(temporary, mount_path)


def _real_folder(mount_path: Path) -> None:
    if mount_path.is_symlink():
        mount_path.unlink()
    elif mount_path.exists() and not mount_path.is_dir():
        raise MountFailed(f"{mount_path} is a file; cannot make it a folder")
    mount_path.mkdir(parents=True, exist_ok=True)


class LocalMounter:
    """Local mode; keeps the syncers of Azurite-backed blob folders to push them."""

    def __init__(self, storage_dir: Path, blob_link: BlobLink | None = None,
                 blob_sync: BlobSyncFactory | None = None) -> None:
        self.storage_dir, self.blob_link, self.blob_sync = storage_dir, blob_link, blob_sync
        self._syncers: dict[Path, BlobSyncer] = {}
        self._lock = threading.Lock()

    def mount(self, volume: Volume, path: Path) -> None:
        synced = volume.kind == AZURE_BLOB and self.blob_link is None
        if synced and self.blob_sync is None:
            raise MountFailed("this pool has no blob store to keep the container's files in")
        mount_local(volume, path, self.storage_dir, self.blob_link)
        if synced:
            assert self.blob_sync is not None
            syncer = self.blob_sync(volume, path)
            syncer.pull()
            with self._lock:
                self._syncers[path] = syncer

    def unmount(self, volume: Volume, path: Path) -> None:
        with self._lock:
            syncer = self._syncers.pop(path, None)
        if syncer is not None:
            syncer.push()  # if this fails the copy stays, so nothing written is lost
        unmount_local(volume, path)

    def push(self) -> None:
        """Upload what the job wrote into synced blob folders (listing outputs reads the store)."""
        with self._lock:
            syncers = list(self._syncers.values())
        for syncer in syncers:
            syncer.push()

    def pull(self) -> None:
        """Download what others wrote into the synced containers since (before each job)."""
        with self._lock:
            syncers = list(self._syncers.values())
        for syncer in syncers:
            syncer.pull()


# --------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------


class Mounter(Protocol):
    def mount(self, volume: Volume, path: Path) -> None: ...

    def unmount(self, volume: Volume, path: Path) -> None: ...

    def push(self) -> None: ...

    def pull(self) -> None: ...


@dataclass(frozen=True)
class MountError:
    """One volume's failure; `str()` is the message, which names the volume and has no key."""

    relative_mount_path: str
    message: str

    def __str__(self) -> str:
        return self.message


class Mounts:
    """The volumes mounted under one root (the cluster's, or one job's), in either mode.

    Every method returns the failures, one per volume, and carries on with the other volumes:
    the caller decides what a failure means (an unusable node, a failed job).
    """

    def __init__(self, root: Path, mounter: Mounter) -> None:
        self.root, self.mounter = root, mounter
        self._mounted: dict[str, Volume] = {}

    @classmethod
    def local(cls, root: Path, storage_dir: Path, *, blob_link: BlobLink | None = None,
              blob_sync: BlobSyncFactory | None = None) -> Mounts:
        return cls(root, LocalMounter(storage_dir, blob_link, blob_sync))

    @classmethod
    def vm(cls, root: Path, work_dir: Path, *, run: Runner = run_command) -> Mounts:
        return cls(root, VmMounter(work_dir, run))

    @property
    def mounted(self) -> list[Volume]:
        return list(self._mounted.values())

    def path_of(self, volume: Volume) -> Path:
        """root/relativeMountPath; refuses a path that would leave the root."""
        relative = posixpath.normpath(volume.relative_mount_path or ".")
        if relative.startswith("/") or relative == "." or relative == ".." or relative.startswith("../"):
            raise MountFailed("relativeMountPath must be a relative path below the mount root")
        return self.root / relative

    def mount_all(self, volumes: Sequence[Volume]) -> list[MountError]:
        """Mount each volume (outer paths before the paths nested in them)."""
        errors: list[MountError] = []
        for volume in sorted(volumes, key=_depth):
            error = self._attempt(volume, "mount", self._mount_one)
            if error is None:
                self._mounted[volume.relative_mount_path] = volume
            else:
                errors.append(error)
        return errors

    def unmount_all(self, volumes: Sequence[Volume] | None = None) -> list[MountError]:
        """Unmount what this object mounted, or the given volumes (after an agent restart),
        nested paths first. A volume that fails to unmount stays in `mounted`."""
        chosen = list(self._mounted.values()) if volumes is None else list(volumes)
        errors: list[MountError] = []
        for volume in sorted(chosen, key=_depth, reverse=True):
            error = self._attempt(volume, "unmount", self._unmount_one)
            if error is None:
                self._mounted.pop(volume.relative_mount_path, None)
            else:
                errors.append(error)
        return errors

    def push(self) -> list[MountError]:
        """Local mode with Azurite: upload the synced blob folders; elsewhere nothing to do."""
        return self._sync("pushing", self.mounter.push)

    def pull(self) -> list[MountError]:
        """Local mode with Azurite: download into the synced blob folders; elsewhere nothing to do."""
        return self._sync("pulling", self.mounter.pull)

    def _sync(self, verb: str, action: Callable[[], None]) -> list[MountError]:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the job goes on
            keys = [v.key for v in self._mounted.values()]
            return [MountError("", _scrub(f"{verb} blob folders under {self.root} failed: {exc}", keys))]
        return []

    def _mount_one(self, volume: Volume) -> None:
        if volume.problem:
            raise MountFailed(volume.problem)
        self.mounter.mount(volume, self.path_of(volume))

    def _unmount_one(self, volume: Volume) -> None:
        self.mounter.unmount(volume, self.path_of(volume))

    def _attempt(self, volume: Volume, verb: str, action: Callable[[Volume], None]) -> MountError | None:
        """Run `action`, turning any failure into a MountError that names the volume."""
        try:
            action(volume)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the volume's error
            reason = str(exc) or type(exc).__name__
            message = f"cannot {verb} volume '{volume.relative_mount_path}' ({volume.kind}): {reason}"
            return MountError(volume.relative_mount_path, _scrub(message, [volume.key]))
        return None


def _depth(volume: Volume) -> int:
    return posixpath.normpath(volume.relative_mount_path).count("/")


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text

