"""`batchai ui`: the page's URL, opened with the token in its fragment; the token never printed."""

from __future__ import annotations

import pytest

from shared.cli.main import main

TOKEN = "a-secret-token"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(["ui", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(autouse=True)
def service(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list[str]:  # type: ignore[no-untyped-def]
    for name in ("BATCHAI_DATA_DIR", "BATCHAI_SUBSCRIPTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHAI_ENDPOINT", "http://127.0.0.1:7071/")
    monkeypatch.setenv("BATCHAI_TOKEN", TOKEN)
    monkeypatch.setenv("BATCHAI_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    return opened


def test_it_opens_the_page_signed_in_and_prints_the_url_without_the_token(
        capsys: pytest.CaptureFixture[str], service: list[str]) -> None:
    code, out = run(capsys)
    assert code == 0 and out.strip() == "Opened http://127.0.0.1:7071/ui/ in the browser, signed in."
    assert service == [f"http://127.0.0.1:7071/ui/#token={TOKEN}&subscription=00000000-0000-0000-0000-000000000000"]


def test_no_browser_prints_only_the_url_and_how_to_sign_in(capsys: pytest.CaptureFixture[str],
                                                           service: list[str]) -> None:
    code, out = run(capsys, "--no-browser")
    assert code == 0 and service == [] and TOKEN not in out
    url, how = out.strip().splitlines()
    assert url == "http://127.0.0.1:7071/ui/"
    assert how.startswith("Sign in there with the token given by the environment")


def test_without_an_endpoint_it_says_how_to_get_one(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, service: list[str]) -> None:
    monkeypatch.delenv("BATCHAI_ENDPOINT")
    code, out = run(capsys)
    assert code == 1 and out.startswith("batchai: error: No endpoint: start `batchai local up`") and service == []
