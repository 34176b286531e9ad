"""How a VM becomes a node: the cloud-init user data every VM of a cluster's scale set boots with.

The default image, when a cluster names none, is Canonical's Ubuntu Server 24.04 LTS
(``Canonical:ubuntu-24_04-lts:server:latest``): a current LTS with standard support until 2029, on
every size Azure still sells, whose Python (3.12) runs the agent. Batch AI's own default (Ubuntu
16.04, Python 3.5) is long retired. GPU drivers are not in Canonical's image: on N-series sizes the
user data installs them with ``ubuntu-drivers install --gpgpu`` (what Azure's documentation gives
for Ubuntu), then the NVIDIA container toolkit, and reboots once so that the driver loads.

The user data (a ``#cloud-config``) writes the node's files and runs two scripts:

- ``install-node-packages.sh`` installs what a node needs and the image lacks (it checks each
  package first, so an image that has everything installs nothing; ``--check`` only lists what is
  missing): the container engine, cifs-utils and nfs-common (Azure Files, file servers), Open MPI,
  openssh-server, the image's python3-venv, blobfuse2 from Microsoft's package repository, and on
  GPU sizes the NVIDIA driver and container toolkit;
- ``boot-agent.sh`` fetches the agent bundle (the agent's wheel and the wheels it depends on, built
  from this repository at deploy time and kept in the control plane's blob storage) by its signed
  URL, installs it into a fresh venv of the image's ``/usr/bin/python3`` with ``--no-index`` (never
  from PyPI), lets the cluster's key pair in for root (the job user: the agent runs jobs as itself),
  and starts ``batchai-node.service`` under systemd, which restarts it whenever it ends.

Every VM of a scale set gets the same user data: the unit's ``ExecStartPre`` fills the node's id
and address into bootstrap.json from the instance metadata service (IMDS) before the agent starts.
mpirun reaches the other nodes with ssh and the cluster's private key (``BATCHAI_MPI_RSH_AGENT``).

Written as JSON after the ``#cloud-config`` line: JSON is YAML, and needs no YAML library here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.ports.vm_pool import PoolSpec

DEFAULT_IMAGE = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}

BATCHAI_DIR = "/var/lib/batchai"
NODE_DIR = f"{BATCHAI_DIR}/node"
SSH_DIR = f"{BATCHAI_DIR}/ssh"
CLUSTER_KEY = f"{SSH_DIR}/cluster_key"
AGENT_URL_FILE = f"{BATCHAI_DIR}/agent-url"
AGENT_HOME = "/opt/batchai"
AGENT_VENV = f"{AGENT_HOME}/venv"
SERVICE_NAME = "batchai-node.service"
UNIT_PATH = f"/etc/systemd/system/{SERVICE_NAME}"
INSTALL_SCRIPT = f"{BATCHAI_DIR}/install-node-packages.sh"
BOOT_SCRIPT = f"{BATCHAI_DIR}/boot-agent.sh"
IDENTIFY_SCRIPT = f"{BATCHAI_DIR}/identify.py"
AGENT_DISTRIBUTION = "batchai-node"  # the agent's own package (shared/node_package.py builds it)
# The image's own interpreter, whatever else is on PATH.
IMAGE_PYTHON = "/usr/bin/python3"
# mpirun's way to the other nodes: ssh with the cluster's key; hosts are the cluster's own VMs on a
# private subnet, whose host keys change with every VM, so they are not pinned.
MPI_RSH_AGENT = (f"ssh -i {CLUSTER_KEY} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                 "-o BatchMode=yes -o LogLevel=ERROR")
# From Ubuntu's archive: what every node needs.
ARCHIVE_PACKAGES = ("ca-certificates", "curl", "python3", "python3-venv", "openssh-server", "openmpi-bin",
                    "cifs-utils", "nfs-common", "fuse3", "docker.io")
# Azure's sizes with NVIDIA GPUs: the N family (NC, ND, NV, NG...).
_GPU_SIZE = re.compile(r"^(standard_)?n[a-z]*\d", re.IGNORECASE)


def is_gpu_size(vm_size: str) -> bool:
    """Whether Azure's size has NVIDIA GPUs (its family starts with N)."""
    return bool(_GPU_SIZE.match(vm_size))


class NodeBoot(BaseModel):
    """What the user data of a cluster's VMs carries; the agent URL and the private key are secrets."""

    model_config = ConfigDict(frozen=True)

    bootstrap: dict[str, Any]  # why: bootstrap.json as the node reads it (node_id, address null: from IMDS)
    agent_url: str = Field(repr=False)  # signed URL of the agent bundle (shared/node_package.py)
    cluster_private_key: str = Field(repr=False)  # OpenSSH private key of the cluster (shared/cluster_keys.py)
    cluster_public_key: str
    admin_user_name: str = ""
    admin_ssh_public_key: str = ""
    gpu: bool = False


def node_boot_of(spec: PoolSpec, agent_url: str = "") -> NodeBoot:
    """What a pool's VMs boot with; ``agent_url`` serves specs whose bootstrap carries no bundle URL."""
    bootstrap = spec.bootstrap
    document = {
        "endpoint": bootstrap.endpoint if bootstrap else None,
        "endpoint_file": None,
        "cluster_id": bootstrap.cluster_id if bootstrap else None,
        "token": bootstrap.token if bootstrap else "",
        "node_id": None,  # filled in on the VM from IMDS (see IDENTIFY)
        "address": None,
        "pool_id": spec.pool_id,
        "vm_size": spec.vm_size,
        # The exporter choice; a VM's file exporter writes under its node folder, not the control plane's.
        "telemetry": {k: v for k, v in (bootstrap.telemetry if bootstrap else {}).items() if k != "directory"},
    }
    return NodeBoot(bootstrap=document, agent_url=(bootstrap.agent_url if bootstrap else "") or agent_url,
                    cluster_private_key=bootstrap.ssh_private_key if bootstrap else "",
                    cluster_public_key=bootstrap.ssh_public_key if bootstrap else "",
                    admin_user_name=spec.admin_user_name, admin_ssh_public_key=spec.admin_ssh_public_key or "",
                    gpu=is_gpu_size(spec.vm_size))


def user_data(boot: NodeBoot) -> str:
    """The ``#cloud-config`` document for every VM of the pool."""
    config: dict[str, Any] = {  # why: the cloud-config document, dumped as YAML
        # Packages are installed by install-node-packages.sh, only where missing.
        "package_update": False,
        "disable_root": False,  # the cluster's key lets mpirun in as root (the job user)
        "write_files": [
            _file(f"{NODE_DIR}/bootstrap.json", json.dumps(boot.bootstrap, indent=2), "0600"),
            _file(AGENT_URL_FILE, boot.agent_url + "\n", "0600"),
            _file(INSTALL_SCRIPT, install_script(boot.gpu), "0755"),
            _file(BOOT_SCRIPT, BOOT_AGENT, "0755"),
            _file(IDENTIFY_SCRIPT, IDENTIFY, "0755"),
            _file(UNIT_PATH, SERVICE_UNIT, "0644"),
        ],
        "runcmd": [[INSTALL_SCRIPT], [BOOT_SCRIPT]],
    }
    if boot.cluster_private_key:
        config["write_files"][1:1] = [
            _file(CLUSTER_KEY, boot.cluster_private_key.rstrip("\n") + "\n", "0600"),
            _file(f"{CLUSTER_KEY}.pub", boot.cluster_public_key.strip() + "\n", "0644")]
    if boot.admin_user_name and boot.admin_ssh_public_key:
        config["users"] = ["default", {
            "name": boot.admin_user_name, "groups": ["sudo"], "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL", "ssh_authorized_keys": [boot.admin_ssh_public_key.strip()]}]
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"


def _file(path: str, content: str, permissions: str) -> dict[str, str]:
    return {"path": path, "content": content, "permissions": permissions, "owner": "root:root"}


def install_script(gpu: bool) -> str:
    """The package step, with the GPU part on N-series sizes."""
    return INSTALL_PACKAGES.replace("@ARCHIVE@", " ".join(ARCHIVE_PACKAGES)).replace("@GPU@", "1" if gpu else "0")


INSTALL_PACKAGES = r"""#!/bin/bash
# What a Batch AI node needs, installed only where the image lacks it. --check: list what is missing.
set -euo pipefail
check=0
[ "${1:-}" = --check ] && check=1
gpu=@GPU@
export DEBIAN_FRONTEND=noninteractive

missing() {  # the packages of "$@" that are not installed
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

archive=$(missing @ARCHIVE@)
blobfuse=$(missing blobfuse2)
driver=""
toolkit=""
if [ "$gpu" = 1 ]; then
    command -v nvidia-smi >/dev/null || driver=nvidia-driver
    toolkit=$(missing nvidia-container-toolkit)
fi
wanted=$(echo $archive $blobfuse $driver $toolkit)
if [ "$check" = 1 ]; then
    echo "missing: ${wanted:-nothing}"
    exit 0
fi
[ -z "$wanted" ] && { echo "every package is present"; exit 0; }

apt-get update -q
[ -n "$archive" ] && apt-get install -y -q $archive
if [ -n "$blobfuse" ]; then  # Microsoft's package repository for this Ubuntu release
    . /etc/os-release
    curl -fsSL --retry 5 "https://packages.microsoft.com/config/ubuntu/${VERSION_ID}/packages-microsoft-prod.deb" \
        -o /tmp/packages-microsoft-prod.deb
    dpkg -i /tmp/packages-microsoft-prod.deb
    apt-get update -q
    apt-get install -y -q blobfuse2
fi
if [ -n "$driver" ]; then
    apt-get install -y -q ubuntu-drivers-common
    ubuntu-drivers install --gpgpu
    touch /var/run/batchai-reboot  # boot-agent.sh reboots once the agent is enabled
fi
if [ -n "$toolkit" ]; then  # NVIDIA's repository for its container toolkit
    keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
    curl -fsSL --retry 5 https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor --yes -o "$keyring"
    curl -fsSL --retry 5 https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
        | sed "s#deb https://#deb [signed-by=$keyring] https://#g" > /etc/apt/sources.list.d/nvidia-container-toolkit.list
    apt-get update -q
    apt-get install -y -q nvidia-container-toolkit
    nvidia-ctk runtime configure --runtime=docker
    systemctl restart docker
fi
"""

BOOT_AGENT = rf"""#!/bin/bash
# Installs the node agent from the bundle the control plane publishes, and starts it under systemd.
set -euo pipefail
say() {{ echo "$(date -u +%H:%M:%S.%N | cut -c1-12) boot-agent: $*"; }}
home={AGENT_HOME}
say "fetching the agent bundle"
rm -rf "$home/wheels" && mkdir -p "$home/wheels"
curl -fsS --retry 10 --retry-delay 3 --retry-connrefused -o "$home/agent.tar.gz" "$(cat {AGENT_URL_FILE})"
tar -xzf "$home/agent.tar.gz" -C "$home/wheels"
say "making the venv"
{IMAGE_PYTHON} -m venv --clear {AGENT_VENV}
say "installing the agent"
{AGENT_VENV}/bin/pip install --quiet --no-index --find-links "$home/wheels" {AGENT_DISTRIBUTION}
# The cluster's key pair: mpirun on one node reaches the others as root (the job user).
if [ -s {CLUSTER_KEY}.pub ]; then
    install -d -m 0700 /root/.ssh
    touch /root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys
    grep -qxF "$(cat {CLUSTER_KEY}.pub)" /root/.ssh/authorized_keys || cat {CLUSTER_KEY}.pub >> /root/.ssh/authorized_keys
    # Also root's own key: mpirun across the job's containers (container_rsh.sh) looks for it there.
    [ -e /root/.ssh/id_ed25519 ] || install -m 0600 {CLUSTER_KEY} /root/.ssh/id_ed25519
fi
say "starting the agent"
systemctl daemon-reload
systemctl enable --now {SERVICE_NAME}
if [ -e /var/run/batchai-reboot ]; then rm -f /var/run/batchai-reboot; systemctl reboot; fi
"""

SERVICE_UNIT = "\n".join([
    "[Unit]",
    "Description=Batch AI node agent",
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    f'Environment="BATCHAI_MPI_RSH_AGENT={MPI_RSH_AGENT}"',
    # Open MPI must not take the container engine's bridge (the same address on every node) for a route.
    "Environment=OMPI_MCA_btl_tcp_if_exclude=lo,docker0 OMPI_MCA_oob_tcp_if_exclude=lo,docker0",
    f"ExecStartPre={AGENT_VENV}/bin/python3 {IDENTIFY_SCRIPT} {NODE_DIR}/bootstrap.json",
    f"ExecStart={AGENT_VENV}/bin/python3 -m node_bootstrap --node-dir {NODE_DIR}",
    f"WorkingDirectory={NODE_DIR}",
    "Restart=always",
    "RestartSec=5",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
])

# Runs before each start of the agent: node_id and address from IMDS (all VMs share custom data).
IDENTIFY = """\
import json, os, sys, time, urllib.request

path = sys.argv[1]
url = "http://169.254.169.254/metadata/instance?api-version=2021-02-01"
for attempt in range(30):
    try:
        request = urllib.request.Request(url, headers={"Metadata": "true"})
        meta = json.load(urllib.request.urlopen(request, timeout=5))
        break
    except OSError:
        time.sleep(2)
else:
    sys.exit("instance metadata service unreachable")
with open(path) as f:
    boot = json.load(f)
boot["node_id"] = meta["compute"]["name"].rsplit("_", 1)[-1]
boot["address"] = meta["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"]
tmp = path + ".tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(boot, f, indent=2)
os.replace(tmp, path)
"""
