"""The `batchai` command (shared.cli.main) and its command groups."""

from shared.cli.main import app, main

__all__ = ["app", "main"]
