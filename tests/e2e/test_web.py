"""The web page (shared/web/, served at /ui/) end to end: Debian's Chromium, headless, driven by
Playwright against a real local host with a real 1-node cluster. The page signs in from the URL's
fragment and from its form, shows a job go from queued to running to succeeded with its stdout as
it grows, downloads an output, terminates a running job, resizes the cluster and lists an event
subscription's dead letters; its markup is checked for landmarks, names, text alternatives and a
Tab order that reaches every control. Screenshots are left in the test's tmp folder."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host
from tests.e2e.polling import wait_until
from tests.integration.test_event_delivery import Receiver

CHROMIUM = Path("/usr/bin/chromium")
ACCOUNT, KEY = "webstorage", "any key"
WS = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.BatchAI"
      "/workspaces/ws")
HOST_ENV = {"BATCHAI_HEARTBEAT_SECONDS": "0.5", "BATCHAI_EVENT_DELIVERY_ATTEMPTS": "1"}
LINES = 8
PRINTS = (f"for i in $(seq 1 {LINES}); do echo line $i; echo warning $i >&2; sleep 0.5; done; "
          "echo trained > $AZ_BATCHAI_OUTPUT_MODEL/model.txt")
SECONDS = 20_000  # how long (ms) the page may take to show something the host did


def job_body(command: str) -> dict[str, Any]:
    return {"properties": {
        "cluster": {"id": f"{WS}/clusters/cpu"}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}],
        "customToolkitSettings": {"commandLine": command}}}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("web") / ".batchai", HOST_ENV) as host:
        yield host


@pytest.fixture(scope="module")
def api(host: LocalHostProcess) -> Iterator[httpx.Client]:
    """A workspace with a 1-node cluster mounting a share, and an experiment, made through the API."""
    with httpx.Client(base_url=host.endpoint + WS, params={"api-version": "2018-05-01"}, headers=host.headers,
                      timeout=30) as client:
        client.put("", json={"location": "local"}).raise_for_status()
        client.put("/clusters/cpu", json={"properties": {
            "vmSize": "STANDARD_D2_V2", "scaleSettings": {"manual": {"targetNodeCount": 1}},
            "userAccountSettings": {"adminUserName": "me"},
            "nodeSetup": {"mountVolumes": {"azureFileShares": [{
                "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/share",
                "credentials": {"accountKey": KEY}, "relativeMountPath": "afs"}]}}}}).raise_for_status()
        client.put("/experiments/exp").raise_for_status()
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is not installed at {CHROMIUM}: `make test` installs it "
                    "(apt-get install chromium chromium-driver).")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The Python package playwright is not installed: `make test` installs it.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, host: LocalHostProcess, api: httpx.Client) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(SECONDS)
    from playwright.sync_api import expect

    expect.set_options(timeout=SECONDS)  # assertions too: a busy machine runs the jobs slower
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield page
    context.close()
    refusals = [e for e in errors if "401" in e]  # the browser logs the refused sign-in's answer
    assert len(refusals) <= 1 and not [e for e in errors if e not in refusals], errors


def token(host: LocalHostProcess) -> str:
    return (host.data_dir / "token").read_text().strip()


def test_the_static_files_need_no_token_and_stay_in_their_folder(host: LocalHostProcess) -> None:
    with httpx.Client(base_url=host.endpoint, timeout=10) as http:
        moved = http.get("/ui")
        assert moved.status_code == 301 and moved.headers["location"] == "ui/"
        index = http.get("/ui/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert index.headers["cache-control"] == "no-cache" and "<main" in index.text
        script = http.get("/ui/app.js")
        assert script.headers["content-type"].startswith("text/javascript") and "import" in script.text
        assert http.get("/ui/app.css").headers["content-type"].startswith("text/css")
        assert http.get("/ui/app.js", headers={"If-None-Match": script.headers["etag"]}).status_code == 304
        for escape in ("/ui/../function_app.py", "/ui/%2e%2e/function_app.py", "/ui/..%2Fevents.py",
                       "/ui/nothing.js", "/ui/.hidden", "/ui/api.js/x"):
            assert http.get(escape).status_code == 404, escape
        assert http.get(WS).status_code == 401  # the data is the API's, behind its token


def test_watch_a_job_run_download_its_output_and_terminate_another(
        page: Any, host: LocalHostProcess, api: httpx.Client, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    page.goto(f"{host.endpoint}/ui#token={token(host)}")
    expect(page.get_by_role("heading", name="Workspace ws")).to_be_visible()
    assert "token" not in page.url and page.url.endswith("/ui/")  # kept in sessionStorage, gone from the address bar
    assert page.evaluate("sessionStorage.getItem('batchai.token')") == token(host)

    cluster = page.get_by_role("article", name="Cluster cpu")
    expect(cluster.get_by_role("img", name="1 node: 1 idle")).to_be_visible()
    expect(cluster.get_by_role("list", name="Node states of cpu")).to_contain_text("idle: 1")
    expect(cluster).to_contain_text("Target nodes1")

    api.put("/experiments/exp/jobs/lines", json=job_body(PRINTS)).raise_for_status()
    page.get_by_role("button", name="Experiment exp").click()
    page.get_by_role("button", name="lines", exact=True).click()
    state = page.locator("#job-state")
    stdout = page.get_by_role("region", name="stdout.txt").locator("pre")
    expect(state).to_have_text("Job lines is running.")
    expect(stdout).to_contain_text("line 1")
    assert state.text_content() == "Job lines is running.", "stdout is shown while the job runs"
    expect(cluster.get_by_role("img", name="1 node: 1 running")).to_be_visible()
    page.screenshot(path=tmp_path / "running.png", full_page=True)
    expect(state).to_have_text("Job lines succeeded.")
    expect(stdout).to_have_text("".join(f"line {i}\n" for i in range(1, LINES + 1)))
    expect(page.get_by_role("region", name="stderr.txt").locator("pre")).to_contain_text(f"warning {LINES}")

    timeline = page.locator("#timeline > li")
    expect(timeline).to_have_count(3)
    assert [re.search(r"(queued|running|succeeded)", t).group(1) for t in timeline.all_text_contents()] == [
        "queued", "running", "succeeded"]
    expect(timeline.nth(2)).to_contain_text("attempt 1, exit code 0")
    expect(page.get_by_role("img", name=re.compile(r"^Time in each state: queued .* s, running .* s, succeeded$")
                            )).to_be_visible()

    outputs = page.get_by_role("region", name="Output directory MODEL")
    with page.expect_download() as download:
        outputs.get_by_role("link", name="model.txt").click()
    saved = tmp_path / "model.txt"
    download.value.save_as(saved)
    assert saved.read_bytes() == b"trained\n"
    page.screenshot(path=tmp_path / "succeeded.png", full_page=True)

    api.put("/experiments/exp/jobs/sleeper", json=job_body("echo started; sleep 60")).raise_for_status()
    page.get_by_role("button", name="sleeper", exact=True).click()
    expect(state).to_have_text("Job sleeper is running.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Terminate job").click()
    expect(page.get_by_role("status").filter(has_text="Terminating the job sleeper.")).to_be_attached()
    expect(state).to_have_text("Job sleeper failed.")
    expect(page.get_by_role("button", name="Terminate job")).to_be_disabled()
    expect(page.locator("#job-facts")).to_contain_text("JobTerminated")
    expect(page.locator("#timeline > li").nth(2)).to_contain_text("terminating")
    assert api.get("/experiments/exp/jobs/sleeper").json()["properties"]["executionState"] == "failed"
    page.screenshot(path=tmp_path / "terminated.png", full_page=True)
    assert time.monotonic() - started < 60


def test_a_tensorflow_jobs_panes_follow_its_master_tasks_files(page: Any, host: LocalHostProcess,
                                                               api: httpx.Client) -> None:
    """ENVIRONMENT.md "Per-task log files": a TensorFlow job's master writes stdout-wk-0.txt."""
    from playwright.sync_api import expect

    share = host.data_dir / "storage" / "fileshares" / ACCOUNT / "share"
    share.mkdir(parents=True, exist_ok=True)
    (share / "tf.py").write_text("import sys\nprint('worker zero says', sys.argv[1])\nprint('oops', file=sys.stderr)\n")
    body = job_body("")["properties"]
    del body["customToolkitSettings"]
    body["tensorFlowSettings"] = {"pythonScriptFilePath": "$AZ_BATCHAI_MOUNT_ROOT/afs/tf.py",
                                  "masterCommandLineArgs": "hello"}
    api.put("/experiments/exp/jobs/tf", json={"properties": body}).raise_for_status()
    page.goto(f"{host.endpoint}/ui#token={token(host)}")
    page.get_by_role("button", name="Experiment exp").click()
    page.get_by_role("button", name="tf", exact=True).click()
    expect(page.locator("#job-state")).to_have_text("Job tf succeeded.")
    expect(page.get_by_role("region", name="stdout-wk-0.txt").locator("pre")).to_have_text("worker zero says hello\n")
    expect(page.get_by_role("region", name="stderr-wk-0.txt").locator("pre")).to_have_text("oops\n")


def test_sign_in_form_refusal_resize_and_dead_letters(page: Any, host: LocalHostProcess, api: httpx.Client,
                                                       tmp_path: Path) -> None:
    from playwright.sync_api import expect

    receiver = Receiver(failures=10_000)  # every delivery fails: each event ends as a dead letter
    try:
        api.put("/eventSubscriptions/hook", json={"properties": {
            "destination": {"endpointUrl": receiver.url}, "secret": "s"}}).raise_for_status()
        api.put("/experiments/exp/jobs/quick", json=job_body("true")).raise_for_status()
        wait_until("a dead letter", lambda: api.get("/eventSubscriptions/hook/deadLetters").json()["value"])
    finally:
        receiver.stop()

    page.goto(f"{host.endpoint}/ui/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Access token").fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The service refused the token (401")
    expect(page.get_by_label("Access token")).to_be_focused()
    page.screenshot(path=tmp_path / "refused.png", full_page=True)
    page.get_by_label("Access token").fill(token(host))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Workspace ws")).to_be_visible()

    subscriptions = page.get_by_role("region", name="Event subscriptions")
    expect(subscriptions.get_by_role("row", name=re.compile("^hook"))).to_contain_text(receiver.url)
    subscriptions.get_by_role("button", name="Dead letters of hook").click()
    expect(subscriptions.get_by_role("button", name="Dead letters of hook")).to_have_attribute("aria-expanded", "true")
    dead = subscriptions.get_by_role("table", name="Dead letters of hook")
    expect(dead).to_contain_text("JobQueued")
    expect(dead).to_contain_text("quick")

    check_accessibility(page, tmp_path)

    cluster = page.get_by_role("article", name="Cluster cpu")
    cluster.get_by_label("Target node count").fill("2")
    cluster.get_by_role("button", name="Resize").click()
    expect(page.get_by_role("status").filter(has_text="Cluster cpu is resizing to 2 nodes.")).to_be_attached()
    expect(cluster.get_by_role("img", name=re.compile(r"^2 nodes: "))).to_be_visible()
    assert api.get("/clusters/cpu").json()["properties"]["scaleSettings"]["manual"]["targetNodeCount"] == 2
    page.screenshot(path=tmp_path / "resized.png", full_page=True)


def test_a_long_experiment_shows_one_page_of_jobs_and_more_on_request(page: Any, host: LocalHostProcess,
                                                                     api: httpx.Client) -> None:
    """A refresh reads one page of jobs (100), not the whole experiment: "Show more" adds a page."""
    from playwright.sync_api import expect

    api.put("/clusters/none", json={"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 0}},
        "userAccountSettings": {"adminUserName": "me"}}}).raise_for_status()
    api.put("/experiments/many").raise_for_status()
    body = {**job_body("true"), "properties": {**job_body("true")["properties"],
                                               "cluster": {"id": f"{WS}/clusters/none"}}}
    for n in range(105):  # each fails at once (a cluster of 0 nodes): nothing runs
        api.put(f"/experiments/many/jobs/j{n:03d}", json=body).raise_for_status()
    page.goto(f"{host.endpoint}/ui#token={token(host)}")
    page.get_by_role("button", name="Experiment many").click()
    rows = page.locator("#jobs-body > tr")
    expect(rows).to_have_count(100)
    more = page.get_by_role("button", name="Show more jobs (100 shown)")
    more.click()
    expect(rows).to_have_count(105)
    expect(page.locator("#more-jobs")).to_be_hidden()


def check_accessibility(page: Any, tmp_path: Path) -> None:
    """Landmarks and headings; a label for every field; a text alternative for every picture; every
    control reached by Tab, in order, with a visible focus."""
    from playwright.sync_api import expect

    for role, name in (("banner", None), ("main", None), ("navigation", "Workspaces")):
        expect(page.get_by_role(role, name=name) if name else page.get_by_role(role)).to_have_count(1)
    expect(page.get_by_role("heading", level=1, name="Batch AI")).to_be_visible()
    page.get_by_role("button", name="Experiment exp").click()
    page.get_by_role("button", name="quick", exact=True).click()
    for name in ("Workspace ws", "Clusters", "Cluster cpu", "Experiments", "Job quick", "Timeline", "Outputs",
                 "stdout.txt", "stderr.txt", "Event subscriptions"):
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(page.locator("#job-state")).to_have_text("Job quick succeeded.")
    expect(page.locator("#job-state")).to_have_attribute("aria-live", "polite")
    unnamed = page.evaluate("""() => [...document.querySelectorAll('img, svg, [role="img"]')]
        .filter(e => e.getClientRects().length && !(e.getAttribute('alt') || e.getAttribute('aria-label') || '').trim())
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unnamed == [], unnamed
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.getClientRects().length && !(e.labels.length || e.getAttribute('aria-label')))
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unlabelled == [], unlabelled
    assert page.evaluate("document.querySelectorAll('[onclick], div[tabindex], span[tabindex]').length") == 0

    time.sleep(2)  # a poll round, so that nothing is being redrawn during the walk
    controls = page.evaluate("""() => {
        const found = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
          .filter(e => !e.disabled && e.tabIndex >= 0 && e.getClientRects().length);
        found.forEach((e, i) => e.dataset.tabCheck = String(i));
        return found.map(e => (e.getAttribute('aria-label') || e.textContent || e.id).trim().slice(0, 40));
    }""")
    assert len(controls) >= 12, controls
    reached: list[int] = []
    outlines = set()
    for _ in range(2 * len(controls) + 2):  # from wherever the focus is, round the whole page
        page.keyboard.press("Tab")
        index, outline = page.evaluate("""() => { const e = document.activeElement;
            return [e.dataset.tabCheck ?? '', getComputedStyle(e).outlineStyle]; }""")
        if index:
            reached.append(int(index))
            outlines.add(outline)
    missed = [controls[i] for i in range(len(controls)) if i not in reached]
    assert not missed, f"not reached by Tab: {missed}"
    steps = list(zip(reached, reached[1:]))
    assert all(b == a + 1 or (a, b) == (len(controls) - 1, 0) for a, b in steps), \
        f"the Tab order follows the page's order: {reached}"
    assert outlines == {"solid"}, "every focused control shows its focus"
    page.screenshot(path=tmp_path / "keyboard.png", full_page=True)
