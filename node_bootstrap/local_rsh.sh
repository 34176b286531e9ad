#!/bin/sh
# mpirun's "remote shell" for the local pool, where every node is a loopback address of this one
# machine: called as ssh would be (`local_rsh.sh [options] host command...`), it runs the command here.
while [ $# -gt 0 ]; do
    case "$1" in
        -*) shift ;;
        *) break ;;
    esac
done
shift  # the host
exec /bin/sh -c "$*"
