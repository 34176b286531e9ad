"""The spec's examples as requests the service takes: PutCluster's placeholder names break Azure's own
naming rules (no '_' in a storage account or share name), which the service checks at create; tests
send names Azure would take in their place."""

from __future__ import annotations

import json
from typing import Any

EXAMPLE_PLACEHOLDERS = {"storage_account_name": "storageaccountname", "azure_file_share_name": "azurefilesharename"}


def with_real_names(body: Any) -> Any:
    text = json.dumps(body)
    for placeholder, name in EXAMPLE_PLACEHOLDERS.items():
        text = text.replace(placeholder, name)
    return json.loads(text)
