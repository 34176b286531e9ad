"""The web page's sweep view, in Chromium against the real local host: the sweep's summary and
best trial, its two SVG plots, and the trial table sorted by a column."""

from __future__ import annotations

from typing import Any

import httpx

from shared.localhost.process import LocalHostProcess
from tests.e2e.test_web import SECONDS, WS, api, browser, host, page, token  # noqa: F401 (fixtures)

STEPS = ('for s in 1 2 3; do echo "{\\"name\\": \\"loss\\", \\"value\\": $((PARAM_N * s)), \\"step\\": $s}" '
         '>> $AZ_BATCHAI_STDOUTERR_DIR/metrics.jsonl; done')


def test_a_sweeps_plots_and_sortable_trials(page: Any, host: LocalHostProcess, api: httpx.Client) -> None:  # noqa: F811
    from playwright.sync_api import expect

    body = {"properties": {
        "jobTemplate": {"cluster": {"id": f"{WS}/clusters/cpu"}, "nodeCount": 1,
                        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs", "customToolkitSettings": {"commandLine": STEPS}},
        "parameters": [{"paramType": "DiscreteParam", "parameterName": "N", "values": [2, 1, 3]}],
        "sampling": {"algorithm": "grid"},
        "objective": {"metricName": "loss", "goal": "minimize", "source": "metricsFile"},
        "budget": {"maxTrials": 3}}}
    api.put("/experiments/exp/sweeps/web", json=body).raise_for_status()
    page.goto(f"{host.endpoint}/ui#token={token(host)}")
    page.get_by_role("button", name="Experiment exp").click()
    page.get_by_role("button", name="Sweep web").click()
    summary = page.locator("#sweep-summary")
    expect(summary).to_contain_text("succeeded", timeout=SECONDS * 3)
    expect(summary).to_contain_text("best: web-0001 = 3.000")  # N=1: 1, 2, 3 -> last 3
    expect(page.get_by_role("img", name="loss per trial: 3 trials with a value")).to_be_visible()
    steps = page.get_by_role("img", name="loss over steps, one line per trial")
    expect(steps.locator("polyline")).to_have_count(3)
    rows = page.locator("#trials-body tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("web-0000")
    page.get_by_role("button", name="Final").click()
    expect(rows.first).to_contain_text("web-0001")  # ascending by the final metric
    expect(page.locator("#trials-head th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    page.get_by_role("button", name="Final").click()
    expect(rows.first).to_contain_text("web-0002")
