"""Where the client finds its service: flag > environment > config file > local host > default."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shared.client.config import LOCAL_SUBSCRIPTION, config_file, read_file, resolve, write_file


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "config"


@pytest.fixture
def env(cfg: Path) -> dict[str, str]:
    return {"BATCHAI_CONFIG_FILE": str(cfg)}


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def local_host(folder: Path, endpoint: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "endpoint").write_text(endpoint + "\n")


def test_defaults_when_nothing_given(env: dict[str, str], cwd: Path) -> None:
    config = resolve(env=env, cwd=cwd)
    assert config.endpoint is None
    assert config.subscription == LOCAL_SUBSCRIPTION == "00000000-0000-0000-0000-000000000000"
    assert config.location == "local"
    assert (config.resource_group, config.workspace, config.token) == (None, None, None)
    assert "endpoint" not in config.sources


def test_config_file_path_from_env(cfg: Path, env: dict[str, str]) -> None:
    assert config_file(env) == cfg


def test_flag_beats_environment_beats_file_beats_local_host(cfg: Path, env: dict[str, str], cwd: Path) -> None:
    write_file(cfg, {"endpoint": "http://file", "workspace": "ws-file", "location": "westus"})
    local_host(cwd / ".batchai", "http://local")
    env |= {"BATCHAI_ENDPOINT": "http://env", "BATCHAI_WORKSPACE": "ws-env"}
    config = resolve({"endpoint": "http://flag"}, env=env, cwd=cwd)
    assert (config.endpoint, config.workspace, config.location) == ("http://flag", "ws-env", "westus")
    assert config.sources == {"endpoint": "flag", "workspace": "environment", "location": str(cfg)}


def test_environment_beats_file(cfg: Path, env: dict[str, str], cwd: Path) -> None:
    write_file(cfg, {"endpoint": "http://file"})
    config = resolve(env=env | {"BATCHAI_ENDPOINT": "http://env"}, cwd=cwd)
    assert (config.endpoint, config.sources["endpoint"]) == ("http://env", "environment")


def test_file_beats_local_host(cfg: Path, env: dict[str, str], cwd: Path) -> None:
    write_file(cfg, {"endpoint": "http://file"})
    local_host(cwd / ".batchai", "http://local")
    config = resolve(env=env, cwd=cwd)
    assert (config.endpoint, config.sources["endpoint"]) == ("http://file", str(cfg))


def test_every_setting_from_environment(env: dict[str, str], cwd: Path) -> None:
    env |= {"BATCHAI_ENDPOINT": "http://e", "BATCHAI_SUBSCRIPTION": "sub", "BATCHAI_RESOURCE_GROUP": "rg",
            "BATCHAI_WORKSPACE": "ws", "BATCHAI_LOCATION": "eastus", "BATCHAI_TOKEN": "tok",
            "BATCHAI_SERVICEBUS": "Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=v"}
    config = resolve(env=env, cwd=cwd)
    assert config.model_dump(exclude={"sources"}) == {
        "endpoint": "http://e", "subscription": "sub", "resource_group": "rg", "workspace": "ws",
        "location": "eastus", "token": "tok", "servicebus": "Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=v"}
    assert set(config.sources.values()) == {"environment"}


def test_local_host_endpoint_from_cwd(env: dict[str, str], cwd: Path) -> None:
    local_host(cwd / ".batchai", "http://127.0.0.1:8080")
    config = resolve(env=env, cwd=cwd)
    assert (config.endpoint, config.sources["endpoint"]) == ("http://127.0.0.1:8080", "local host")


def test_local_host_service_bus_door_from_cwd_also_when_its_endpoint_is_given(env: dict[str, str],
                                                                            cwd: Path) -> None:
    local_host(cwd / ".batchai", "http://127.0.0.1:8080")
    (cwd / ".batchai" / "servicebus").write_text("Endpoint=sb://127.0.0.1:5999;SharedAccessKeyName=local\n")
    assert resolve(env=env, cwd=cwd).servicebus == "Endpoint=sb://127.0.0.1:5999;SharedAccessKeyName=local"
    same = resolve(env=env | {"BATCHAI_ENDPOINT": "http://127.0.0.1:8080/"}, cwd=cwd)
    assert (same.servicebus, same.token) == ("Endpoint=sb://127.0.0.1:5999;SharedAccessKeyName=local", None)
    assert resolve(env=env | {"BATCHAI_ENDPOINT": "http://elsewhere"}, cwd=cwd).servicebus is None


def test_local_host_endpoint_from_data_dir(tmp_path: Path, env: dict[str, str], cwd: Path) -> None:
    local_host(cwd / ".batchai", "http://cwd")
    local_host(tmp_path / "data", "http://data-dir")
    config = resolve(env=env | {"BATCHAI_DATA_DIR": str(tmp_path / "data")}, cwd=cwd)
    assert (config.endpoint, config.sources["endpoint"]) == ("http://data-dir", "local host")


def test_empty_local_host_file_ignored(env: dict[str, str], cwd: Path) -> None:
    local_host(cwd / ".batchai", "  ")
    assert resolve(env=env, cwd=cwd).endpoint is None


def test_empty_values_ignored(cfg: Path, env: dict[str, str], cwd: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[defaults]\nworkspace =\nlocation = westus\n")
    local_host(cwd / ".batchai", "http://local")
    env |= {"BATCHAI_ENDPOINT": "", "BATCHAI_WORKSPACE": "", "BATCHAI_LOCATION": ""}
    config = resolve({"endpoint": "", "location": None, "subscription": ""}, env=env, cwd=cwd)
    assert (config.endpoint, config.sources["endpoint"]) == ("http://local", "local host")
    assert config.workspace is None
    assert config.subscription == LOCAL_SUBSCRIPTION
    assert (config.location, config.sources["location"]) == ("westus", str(cfg))


def test_write_file_merges(cfg: Path) -> None:
    assert write_file(cfg, {"endpoint": "http://a", "workspace": "ws"}) == {"endpoint": "http://a", "workspace": "ws"}
    assert write_file(cfg, {"endpoint": "http://b", "workspace": None, "location": "l"}) == {
        "endpoint": "http://b", "workspace": "ws", "location": "l"}
    assert read_file(cfg) == {"endpoint": "http://b", "workspace": "ws", "location": "l"}


def test_write_file_empty_string_removes(cfg: Path) -> None:
    write_file(cfg, {"endpoint": "http://a", "workspace": "ws"})
    assert write_file(cfg, {"workspace": "", "location": ""}) == {"endpoint": "http://a"}
    assert read_file(cfg) == {"endpoint": "http://a"}


def test_read_file_missing_or_without_section(cfg: Path) -> None:
    assert read_file(cfg) == {}
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[other]\nendpoint = http://x\n")
    assert read_file(cfg) == {}


def test_read_file_ignores_unknown_keys(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[defaults]\nendpoint = http://x\ncolour = blue\n")
    assert read_file(cfg) == {"endpoint": "http://x"}


def test_file_with_token_is_private(cfg: Path) -> None:
    write_file(cfg, {"endpoint": "http://a"})
    write_file(cfg, {"token": "t0ken"})
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert read_file(cfg) == {"endpoint": "http://a", "token": "t0ken"}


def test_token_from_file_resolved(cfg: Path, env: dict[str, str], cwd: Path) -> None:
    write_file(cfg, {"token": "t0ken"})
    config = resolve(env=env, cwd=cwd)
    assert (config.token, config.sources["token"]) == ("t0ken", str(cfg))


# '%' is an ordinary character in values (URL-encoded endpoints, tokens): no interpolation.
def test_percent_in_value_round_trips(cfg: Path) -> None:
    write_file(cfg, {"endpoint": "http://host/a%20b", "token": "abc%def"})
    assert read_file(cfg) == {"endpoint": "http://host/a%20b", "token": "abc%def"}


def test_percent_in_hand_written_file_is_read(cfg: Path, env: dict[str, str], cwd: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[defaults]\nendpoint = http://host/a%20b\n")
    assert resolve(env=env, cwd=cwd).endpoint == "http://host/a%20b"
