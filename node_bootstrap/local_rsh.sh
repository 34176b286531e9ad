#!/bin/sh
# rsh agent for the local pool, where the job's "nodes" are loopback addresses (127.0.0.2, 127.0.0.3, ...)
# of one machine. Open MPI calls it like ssh: `local_rsh.sh [ssh options] host command...`; it runs the
# command here, as ssh would on the host: the words joined by spaces, given to a shell.
#
# Each "host" gets its own Open MPI session directory (OMPI_MCA_orte_tmpdir_base): otherwise the
# daemons that mpirun starts at the same moment for two "hosts" share /tmp/ompi.<hostname>.<uid>/jf.<job>,
# race to create it ("mkdir ... File exists") and to write the hwloc topology file in it (orted
# segfaults in hwloc_shmem_topology_write), which failed about 1 launch in 5 here.
set -e

# Skip ssh options; those listed take a value.
while [ $# -gt 0 ]; do
    case "$1" in
        -b|-c|-D|-E|-e|-F|-I|-i|-J|-L|-l|-m|-O|-o|-p|-Q|-R|-S|-W|-w) shift 2 ;;
        --) shift; break ;;
        -*) shift ;;
        *) break ;;
    esac
done
if [ $# -lt 2 ]; then
    echo "usage: $0 [ssh options] host command..." >&2
    exit 255
fi
host=$1
shift

case "$host" in
    */*|..|.) echo "$0: bad host name: $host" >&2; exit 255 ;;
esac
session_root="${TMPDIR:-/tmp}/batchai-local-rsh.$(id -u)/$host"
mkdir -p "$session_root"
OMPI_MCA_orte_tmpdir_base=$session_root
PRTE_MCA_prte_tmpdir_base=$session_root  # Open MPI 5's runtime
export OMPI_MCA_orte_tmpdir_base PRTE_MCA_prte_tmpdir_base

# Open MPI writes the command for the shell it assumes the remote host has: the local one.
case "${SHELL##*/}" in
    csh|tcsh) exec "$SHELL" -c "$*" ;;
    *) exec /bin/sh -c "$*" ;;
esac
