#!/bin/sh
# rsh agent for mpirun in a job's container (toolkits.container_rsh_agent builds its first words).
# mpirun runs in the master's container; for every other node of the job Open MPI calls
#   container_rsh.sh --containers ADDR=NAME,... (--local LOCAL_RSH | --ssh-user USER [--ssh-key KEY]) \
#                    [ssh options] host command...
# and this starts the command (Open MPI's daemon) in that node's container, so the ranks there run in
# the job's image with the job's mounts:
# - on VMs: `ssh USER@host docker exec NAME /bin/sh -c 'command'` with the cluster's key (the image needs
#   an ssh client; USER, the node's job user, may run docker there);
# - in the local pool (every node is this machine): `docker exec NAME LOCAL_RSH host command`.
# The words of the command are joined by spaces and given to a shell, as ssh does.
set -e
me=container_rsh.sh
containers= local_rsh= ssh_user= ssh_key=
while [ $# -gt 0 ]; do
    case "$1" in
        --containers) containers=$2; shift 2 ;;
        --local) local_rsh=$2; shift 2 ;;
        --ssh-user) ssh_user=$2; shift 2 ;;
        --ssh-key) ssh_key=$2; shift 2 ;;
        *) break ;;
    esac
done
# The container of a job's node, by its address; empty for any other word.
container_of() {
    old_ifs=$IFS
    IFS=,
    found=
    for pair in $containers; do
        if [ "${pair%%=*}" = "$1" ]; then
            found=${pair#*=}
        fi
    done
    IFS=$old_ifs
    printf '%s' "$found"
}

# Skip what Open MPI puts before the host (ssh options, if any): the host is a node of the job.
while [ $# -gt 0 ] && [ -z "$(container_of "$1")" ]; do
    shift
done
if [ $# -lt 2 ]; then
    echo "$me: no node of this job ($containers) and command in the arguments" >&2
    exit 255
fi
host=$1
container=$(container_of "$host")
shift

if [ -n "$local_rsh" ]; then
    exec docker exec "$container" "$local_rsh" "$host" "$@"
fi
if ! command -v ssh >/dev/null 2>&1; then
    echo "$me: the job's image has no ssh client; mpirun in a container reaches the other nodes' containers" \
         "with ssh (install openssh-client in the image)" >&2
    exit 255
fi
# The command as one single-quoted word for the remote shell.
quoted=$(printf '%s' "$*" | sed "s/'/'\\\\''/g")
exec ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    ${ssh_key:+-i "$ssh_key"} -l "$ssh_user" "$host" "docker exec $container /bin/sh -c '$quoted'"
