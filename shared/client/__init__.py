"""The Python client of Batch AI, rebuilt (used by the `batchai` command)."""

from shared.client.client import BatchAIClient, state_of
from shared.client.config import ClientConfig, resolve
from shared.client.errors import ApiError, ClientError, ServiceUnreachable

__all__ = ["ApiError", "BatchAIClient", "ClientConfig", "ClientError", "ServiceUnreachable", "resolve", "state_of"]
