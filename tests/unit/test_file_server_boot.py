"""The file server's cloud-init: what it asks for, and inputs it refuses (no I/O; the contract test
runs `cloud-init schema` on what ARM receives)."""

from __future__ import annotations

import json

import pytest

from shared.file_server_boot import PACKAGES, SETUP_SCRIPT, setup_script, user_data


def test_user_data_is_cloud_config_json_with_the_setup_script() -> None:
    text = user_data(2, "/mnt/data", "10.0.0.0/24")
    head, _, body = text.partition("\n")
    assert head == "#cloud-config"
    config = json.loads(body)
    assert config["packages"] == list(PACKAGES) and config["runcmd"] == [[SETUP_SCRIPT]]
    [script] = config["write_files"]
    assert script["path"] == SETUP_SCRIPT and script["permissions"] == "0755"


def test_one_disk_is_used_as_it_is_more_make_raid0() -> None:
    script = setup_script(1, "/mnt/data", "10.0.0.0/24")
    assert "DISK_COUNT=1" in script and 'if [ "$DISK_COUNT" -gt 1 ]' in script
    assert "--level=0" in setup_script(4, "/mnt/data", "10.0.0.0/24")


@pytest.mark.parametrize(("count", "mount_point", "clients"), [
    (0, "/mnt/data", "10.0.0.0/24"),
    (1, "relative", "10.0.0.0/24"),
    (1, "/mnt/my data", "10.0.0.0/24"),
    (1, "/mnt/data", "10.0.0.0/24 *(rw)"),
    (1, "/mnt/data", "everyone"),
])
def test_refuses_what_would_break_the_script(count: int, mount_point: str, clients: str) -> None:
    with pytest.raises(ValueError):
        setup_script(count, mount_point, clients)
