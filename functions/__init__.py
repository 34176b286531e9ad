"""The Functions app's triggers, one Blueprint per area; function_app.py registers them."""

import azure.functions as func


def blueprint() -> func.Blueprint:
    """A new Blueprint, typed: azure-functions leaves `Blueprint.__init__` unannotated."""
    return func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions: (*args, **kwargs) without hints
