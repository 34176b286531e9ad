"""Fixtures of the contract suites: the Service Bus adapter on the session's test broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def servicebus_messaging(servicebus_broker: str) -> Iterator[object]:
    """A Service Bus adapter on the session's test broker, closed after the test."""
    from shared.adapters.azure.servicebus_messaging import ServiceBusMessaging

    adapter = ServiceBusMessaging(servicebus_broker)
    yield adapter
    adapter.close()

