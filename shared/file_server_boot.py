"""The cloud-init user data of a file server VM: its data disks in RAID 0, one ext4 file system
mounted at the mount point (/mnt/data), exported over NFS to the nodes' subnet.

Azure shows a VM's data disks as /dev/disk/azure/scsi1/lun<N> (udev rules of Azure's Linux images);
the script waits for each, joins them with mdadm (RAID 0 when there is more than one), makes the
file system once (a re-run or a reboot finds it and only mounts it), writes /etc/fstab and
/etc/exports, and starts the NFS server. Each step checks first, so running it again is harmless.

Written as JSON after the ``#cloud-config`` line (JSON is YAML, and needs no YAML library here);
``cloud-init schema`` validates it in the tests.
"""

from __future__ import annotations

import ipaddress
import json
import shlex

SETUP_SCRIPT = "/var/lib/batchai/setup-file-server.sh"
RAID_DEVICE = "/dev/md0"
PACKAGES = ("mdadm", "nfs-kernel-server")

_SCRIPT = """\
#!/bin/bash
# Batch AI file server: RAID 0 of the data disks, ext4 at the mount point, exported over NFS.
set -euo pipefail
DISK_COUNT={disk_count}
MOUNT_POINT={mount_point}
CLIENTS={clients}
RAID_DEVICE={raid_device}

disks=()
for lun in $(seq 0 $((DISK_COUNT - 1))); do
  link=/dev/disk/azure/scsi1/lun$lun
  for _ in $(seq 150); do [ -e "$link" ] && break; sleep 2; done
  [ -e "$link" ] || {{ echo "data disk at LUN $lun never appeared" >&2; exit 1; }}
  disks+=("$(readlink -f "$link")")
done

if [ "$DISK_COUNT" -gt 1 ]; then
  if [ ! -e "$RAID_DEVICE" ]; then
    mdadm --assemble --scan || true
  fi
  if [ ! -e "$RAID_DEVICE" ]; then
    mdadm --create "$RAID_DEVICE" --run --level=0 --raid-devices="$DISK_COUNT" "${{disks[@]}}"
  fi
  mdadm --detail --scan > /etc/mdadm/mdadm.conf
  update-initramfs -u || true
  device=$RAID_DEVICE
else
  device=${{disks[0]}}
fi

blkid -o value -s TYPE "$device" >/dev/null 2>&1 || mkfs.ext4 -F -L batchai-data "$device"
uuid=$(blkid -o value -s UUID "$device")
mkdir -p "$MOUNT_POINT"
grep -q "UUID=$uuid " /etc/fstab || echo "UUID=$uuid $MOUNT_POINT ext4 defaults,nofail 0 2" >> /etc/fstab
mountpoint -q "$MOUNT_POINT" || mount "$MOUNT_POINT"
chmod 0777 "$MOUNT_POINT"

grep -q "^$MOUNT_POINT " /etc/exports || \\
  echo "$MOUNT_POINT $CLIENTS(rw,sync,no_root_squash,no_subtree_check)" >> /etc/exports
systemctl enable --now nfs-kernel-server
exportfs -ra
"""


def setup_script(disk_count: int, mount_point: str, clients: str) -> str:
    """The bash script that makes the RAID, the file system, the mount and the export."""
    if disk_count < 1:
        raise ValueError("a file server needs at least one data disk")
    if not mount_point.startswith("/") or any(c.isspace() for c in mount_point):
        raise ValueError(f"mount point {mount_point!r} must be an absolute path without spaces")
    ipaddress.ip_network(clients)  # the clients are one network: refuse anything else
    return _SCRIPT.format(disk_count=disk_count, mount_point=shlex.quote(mount_point), clients=clients,
                          raid_device=RAID_DEVICE)


def user_data(disk_count: int, mount_point: str, clients: str) -> str:
    """The #cloud-config of a file server VM: packages, the setup script, and a run of it."""
    config = {
        "package_update": True,
        "packages": list(PACKAGES),
        "write_files": [{"path": SETUP_SCRIPT, "permissions": "0755", "owner": "root:root",
                         "content": setup_script(disk_count, mount_point, clients)}],
        "runcmd": [[SETUP_SCRIPT]],
    }
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"
