"""Bodies that `az batchai` and azure-mgmt-batchai 7.0.0 send are accepted as they are."""

from __future__ import annotations

import pytest
from azure.mgmt.batchai import models as sdk

from shared.models import ClusterCreateParameters


def test_the_sdks_auto_scale_settings_are_accepted() -> None:
    # The SDK sends its default initialNodeCount 0 (so does az without -t): "start empty, grow to the minimum".
    scale = sdk.ScaleSettings(auto_scale=sdk.AutoScaleSettings(minimum_node_count=1, maximum_node_count=3))
    body = {"properties": {"vmSize": "STANDARD_NC6", "scaleSettings": scale.serialize(),
                           "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}
    assert body["properties"]["scaleSettings"]["autoScale"]["initialNodeCount"] == 0
    parsed = ClusterCreateParameters.model_validate(body)
    assert parsed.properties.scale_settings.auto_scale.initial_node_count == 0  # type: ignore[union-attr]


def test_a_given_start_below_the_minimum_is_still_refused() -> None:
    body = {"properties": {"vmSize": "STANDARD_NC6", "userAccountSettings": {"adminUserName": "u"},
                           "scaleSettings": {"autoScale": {"minimumNodeCount": 2, "maximumNodeCount": 2,
                                                           "initialNodeCount": 1}}}}
    with pytest.raises(ValueError, match="initialNodeCount"):
        ClusterCreateParameters.model_validate(body)
