"""The caller of an API operation, once authenticated."""

from __future__ import annotations

from dataclasses import dataclass

from shared.models.role_assignment import Role

RANK = {Role.READER: 1, Role.CONTRIBUTOR: 2, Role.OWNER: 3}


@dataclass(frozen=True)
class Principal:
    id: str  # an Entra object id, App Service's principal id, or a fixed id for keys and the local token
    name: str
    how: str  # "jwt", "appservice", "function-key", "local-token"
    # Owner of everything: the local host's token, a Functions key, a configured first owner.
    superuser: bool = False


LOCAL_OWNER = Principal("local-owner", "the local host's owner token", "local-token", superuser=True)
FUNCTION_KEY = Principal("function-key", "a Functions key", "function-key", superuser=True)
