"""`--query` (JMESPath over az's view of an answer) and `--generate-ssh-keys` (~/.ssh/id_rsa as az)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from shared.cli.common import Query, UserError, az_view
from shared.cli.ssh_keys import ensure_rsa_key_pair


@pytest.mark.parametrize("argv", [["job", "show", "-n", "j", "--query", "name"],
                                  ["job", "show", "--query=name", "-n", "j"],
                                  ["--query", "name", "job", "show", "-n", "j"]])
def test_query_is_taken_wherever_it_stands(argv: list[str]) -> None:
    assert Query.take(argv) == ["job", "show", "-n", "j"]
    assert Query.expression is not None and Query.expression.search({"name": "j"}) == "j"
    assert Query.take(["job", "list"]) == ["job", "list"] and Query.expression is None


@pytest.mark.parametrize("argv", [["job", "show", "--query"], ["job", "show", "--query", "[?"]])
def test_a_bad_query_is_a_user_error(argv: list[str]) -> None:
    with pytest.raises(UserError, match="--query"):
        Query.take(argv)


def test_az_view_flattens_properties_as_az_printed_them() -> None:
    wire = {"id": "/subscriptions/s/resourceGroups/batchai.recipes/providers/Microsoft.BatchAI/workspaces/w/"
                  "experiments/e/jobs/j", "name": "j",
            "properties": {"jobOutputDirectoryPathSegment": "s/batchai.recipes/workspaces/w/experiments/e/jobs/j/1"}}
    view = az_view(wire)
    assert view["jobOutputDirectoryPathSegment"] == wire["properties"]["jobOutputDirectoryPathSegment"]
    assert view["properties"] == wire["properties"] and view["resourceGroup"] == "batchai.recipes"


def test_generate_ssh_keys_makes_a_pair_once_then_reuses_it(tmp_path: Path) -> None:
    public = ensure_rsa_key_pair(tmp_path)
    private = tmp_path / ".ssh" / "id_rsa"
    assert public.startswith("ssh-rsa ") and (tmp_path / ".ssh" / "id_rsa.pub").read_text().strip() == public
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".ssh").stat().st_mode) == 0o700
    assert ensure_rsa_key_pair(tmp_path) == public  # reused, not replaced
    (tmp_path / ".ssh" / "id_rsa.pub").unlink()  # only the private key left: its public half again
    assert ensure_rsa_key_pair(tmp_path) == public
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert key.key_size == 2048  # type: ignore[union-attr]


def test_an_unusable_private_key_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("not a key")
    with pytest.raises(UserError, match="id_rsa"):
        ensure_rsa_key_pair(tmp_path)
