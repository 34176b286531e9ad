"""Timer cadence and runOnStartup come from app settings: Azure's from infra/main.bicep, the local
host's 2 s from the Settings defaults."""

from __future__ import annotations

import pytest

from shared.localhost.timers import resolve_schedule
from shared.settings import Settings, app_setting_reference, timers_run_on_startup


def test_a_schedule_naming_an_app_setting_is_the_settings_value() -> None:
    reference = app_setting_reference("reconcile_schedule")
    assert reference == "%BATCHAI_RECONCILE_SCHEDULE%"
    assert resolve_schedule(reference, Settings()) == "*/2 * * * * *"  # the local host's cadence
    assert resolve_schedule(reference, Settings(reconcile_schedule="*/15 * * * * *")) == "*/15 * * * * *"
    assert resolve_schedule("0 */5 * * * *", Settings()) == "0 */5 * * * *"
    with pytest.raises(ValueError, match="NO_SUCH"):
        resolve_schedule("%NO_SUCH%", Settings())


def test_run_on_startup_is_read_from_its_setting_alone() -> None:
    assert timers_run_on_startup({}) is True
    assert timers_run_on_startup({"BATCHAI_TIMERS_RUN_ON_STARTUP": "false"}) is False
    # Another setting being wrong does not stop indexing.
    assert timers_run_on_startup({"BATCHAI_HEARTBEAT_SECONDS": "not a number"}) is True

