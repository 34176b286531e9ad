"""Upper bounds of every count and every string a user gives (invariant 8: every count is bounded).

Each bound is far above what a real user needs, and most follow a limit Azure itself sets, so that
a job or cluster that ran on Batch AI is never refused here. They stop a request from making the
service or a node do unbounded work: `pyTorchSettings.processCount = 2147483647` once grew a node's
agent to 3 GB in seconds. The README's "Hardening" section lists them; keep it in step.
"""

from __future__ import annotations

# --- counts -------------------------------------------------------------------------------------

MAX_NODE_COUNT = 1000
"""A job's nodeCount and a cluster's target/minimum/maximum/initial node counts: a VM scale set, which
holds a cluster's nodes, has at most 1000 VMs."""

MAX_PROCESSES_PER_NODE = 512
"""A job's processCount (every toolkit), and TensorFlow's workerCount, per node of the job: more than
the vCPUs of Azure's largest VM (416), and MPI-style jobs run at most one process per core. A fixed
total would let one node of a one-node job start them all."""

MAX_ENVIRONMENT_VARIABLES = 1000
"""environmentVariables of a job or setup task; and as many secrets."""

MAX_SECRETS = 1000

MAX_MOUNT_VOLUMES = 64
"""Volumes of each kind (azureFileShares, azureBlobFileSystems, fileServers, unmanagedFileSystems)."""

MAX_DIRECTORIES = 100
"""inputDirectories, and as many outputDirectories, of a job."""

MAX_DATA_DISKS = 64
"""A file server's dataDisks.diskCount: the most data disks an Azure VM can attach."""

MAX_DISK_SIZE_GB = 32767
"""A file server's dataDisks.diskSizeInGB: the largest Azure managed disk (32 TiB)."""

MAX_TAGS = 50
"""Tags of a workspace: ARM's own limit, with tag names of at most 512 and values of 256 characters."""

MAX_TAG_NAME_LENGTH = 512
MAX_TAG_VALUE_LENGTH = 256

# --- string lengths -----------------------------------------------------------------------------

MAX_STRING_LENGTH = 4096
"""Any string the API takes that no bound below names (paths, images, mount options, ...): Linux's
PATH_MAX, the longest path a node can use."""

MAX_COMMAND_LINE_LENGTH = 32768
"""Command lines and command-line arguments (jobs, job preparation, setup tasks, mount commands):
Windows' longest command line; Linux takes more per argument, but no real job sends that much."""

MAX_ENV_NAME_LENGTH = 256
MAX_ENV_VALUE_LENGTH = 32768
"""An environment variable's or secret's value: Windows' longest environment variable."""

MAX_SECRET_LENGTH = 8192
"""Passwords, storage keys, registry passwords (which may be access tokens), SSH public keys."""

MAX_URL_LENGTH = 2048
"""URLs and resource ids (azureFileUrl, Key Vault secret URLs, registry servers, cluster ids)."""

MAX_USER_NAME_LENGTH = 64
"""adminUserName and registry user names: a Linux user name has at most 32 characters."""

MAX_RELATIVE_MOUNT_PATH_LENGTH = 255
"""A volume's relativeMountPath, a folder name under the mount root: a Linux file name's limit."""
