"""One "VM" of the netns pool: run inside the node's network namespace, it boots the node from the
scale set's user data the way an Azure VM does, then stands in for the VM's PID 1 (systemd).

``python -m shared.adapters.local.netns_vm --folder F --address A --pool P --instance N`` runs in a
private mount namespace (``unshare --mount``): the node's own folders under F are bind-mounted over
the paths the user data writes to (/var/lib/batchai, /opt/batchai, /root/.ssh,
/etc/systemd/system), so the user data runs unchanged and touches nothing of this machine's. Then:

- what Azure gives every VM: the loopback up, an instance metadata service (IMDS) on
  169.254.169.254 of this namespace only, naming the instance ``<pool>_<n>`` and its address, and
  the image's sshd listening on the node's address (its own host key);
- what cloud-init does: ``write_files``, then ``runcmd`` as one shell script. Packages are never
  installed on this machine: the package step runs with ``--check`` and only lists what is missing;
  ``users`` (the admin user) is not created here (it would be a user of this machine);
- what systemd does: ``systemctl enable --now`` starts the unit from its file (Environment,
  ExecStartPre, ExecStart, WorkingDirectory) in a clean environment, restarted when it ends.

Everything it starts stays in the namespace; the pool ends the node by killing every process of it.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shlex
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

from shared import node_boot

IMDS_ADDRESS = "169.254.169.254"
# The paths the user data writes to, each replaced by a folder of the node's own.
OWN_PATHS = (node_boot.BATCHAI_DIR, node_boot.AGENT_HOME, "/root/.ssh", "/etc/systemd/system")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEMCTL_SHIM = """#!/bin/sh
# systemd's stand-in (shared/adapters/local/netns_vm.py): records the units to start after runcmd.
[ "$1" = enable ] && [ "$2" = --now ] && echo "$3" >> "$BATCHAI_VM_UNITS"
exit 0
"""


def own_folder(folder: Path, path: str) -> Path:
    return folder / "fs" / path.strip("/").replace("/", "_")


def run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def mount_own_paths(folder: Path) -> None:
    for path in OWN_PATHS:
        own = own_folder(folder, path)
        own.mkdir(parents=True, exist_ok=True)
        run("mount", "--bind", str(own), path)
    os.chmod("/root/.ssh", 0o700)


def serve_imds(pool: str, instance: str, address: str) -> None:
    """IMDS as identify.py and the agent's scheduled-events watcher ask it."""
    run("ip", "addr", "add", f"{IMDS_ADDRESS}/32", "dev", "lo")
    instance_doc = {"compute": {"name": f"{pool}_{instance}"},
                    "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": address}]}}]}}

    class Imds(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the library's name)
            if self.headers.get("Metadata") != "true":
                self.send_error(400)
                return
            path = self.path.split("?")[0]
            body = (instance_doc if path == "/metadata/instance"
                    else {"DocumentIncarnation": 0, "Events": []} if path == "/metadata/scheduledevents" else None)
            if body is None:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def server_bind(self) -> None:
            """Without HTTPServer's reverse lookup of the address: no name server answers in here."""
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = IMDS_ADDRESS, 80

    server = Server((IMDS_ADDRESS, 80), Imds)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def start_sshd(folder: Path, address: str) -> subprocess.Popen[bytes]:
    """The image's sshd on the node's address, with a host key of this node."""
    ssh = folder / "sshd"
    ssh.mkdir(exist_ok=True)
    host_key = ssh / "ssh_host_ed25519_key"
    if not host_key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    config = ssh / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {address}", f"HostKey {host_key}", f"PidFile {ssh / 'sshd.pid'}",
        "AuthorizedKeysFile /root/.ssh/authorized_keys", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "", ""]))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    return subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)])


def cloud_init(folder: Path, user_data: str) -> list[str]:
    """write_files, then runcmd as one script (as cloud-init runs it); the units it enabled."""
    config = json.loads(user_data.split("\n", 1)[1])  # the user data is JSON after "#cloud-config"
    for item in config.get("write_files", []):
        path = Path(item["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(item["content"])
        os.chmod(path, int(item.get("permissions", "0644"), 8))
    shim = folder / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "systemctl").write_text(SYSTEMCTL_SHIM)
    os.chmod(shim / "systemctl", 0o755)
    units = folder / "enabled-units"
    units.write_text("")
    lines = ["#!/bin/sh"]
    for command in config.get("runcmd", []):
        argv = command if isinstance(command, list) else ["sh", "-c", command]
        if argv == [node_boot.INSTALL_SCRIPT]:
            argv = [*argv, "--check"]  # never install packages on this machine: say what is missing
        lines.append(shlex.join(argv))
    script = folder / "runcmd"
    script.write_text("\n".join(lines) + "\n")
    env = {"PATH": f"{shim}:{CLEAN_PATH}", "HOME": "/root", "LANG": "C.UTF-8", "BATCHAI_VM_UNITS": str(units),
           "PIP_CONFIG_FILE": os.devnull}  # pip as on a fresh VM: no index or wheel folder of this machine
    started = time.monotonic()
    subprocess.run(["sh", str(script)], env=env, check=False)
    print(f"runcmd took {time.monotonic() - started:.1f} s", flush=True)
    return [u for u in units.read_text().split() if u]


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def supervise(unit: str) -> None:
    """Start the unit, and again RestartSec after it ends (Restart=always), until killed."""
    settings = unit_settings(Path("/etc/systemd/system", unit).read_text())
    env = {"PATH": CLEAN_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    for value in settings.get("Environment", []):
        for assignment in shlex.split(value):
            name, _, val = assignment.partition("=")
            env[name] = val
    cwd = (settings.get("WorkingDirectory") or ["/"])[0]
    Path(cwd).mkdir(parents=True, exist_ok=True)
    pause = float((settings.get("RestartSec") or ["5"])[0])
    while True:
        ok = all(subprocess.run(shlex.split(c), env=env, cwd=cwd).returncode == 0
                 for c in settings.get("ExecStartPre", []))
        if ok:
            print(f"starting {unit}", flush=True)
            code = subprocess.run(shlex.split(settings["ExecStart"][0]), env=env, cwd=cwd).returncode
            print(f"{unit} ended with {code}", flush=True)
        if (settings.get("Restart") or ["no"])[0] != "always":
            return
        time.sleep(pause)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netns_vm", description=__doc__)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--instance", required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    run("ip", "link", "set", "lo", "up")
    mount_own_paths(args.folder)
    serve_imds(args.pool, args.instance, args.address)
    start_sshd(args.folder, args.address)
    print(f"IMDS and sshd up in {time.monotonic() - started:.1f} s", flush=True)
    units = cloud_init(args.folder, (args.folder / "user-data").read_text())
    print(f"booted in {time.monotonic() - started:.1f} s; starting {' '.join(units) or 'no unit'}", flush=True)
    threads = [threading.Thread(target=supervise, args=(u,), daemon=True) for u in units]
    for thread in threads:
        thread.start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
