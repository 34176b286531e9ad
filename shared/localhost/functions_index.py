"""Index a FunctionApp the way the Functions host does: name, trigger and callable of each function."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IndexedFunction:
    name: str
    trigger_type: str  # httpTrigger | serviceBusTrigger | timerTrigger | ...
    func: Callable[..., Any]
    route: str | None = None
    methods: tuple[str, ...] = ()
    queue_name: str | None = None
    topic_name: str | None = None
    subscription_name: str | None = None
    connection: str | None = None  # the app setting (prefix) naming a Service Bus trigger's namespace
    schedule: str | None = None
    run_on_startup: bool = False
    binding_names: tuple[str, ...] = field(default_factory=tuple)


def load_app(module_name: str = "function_app", attribute: str = "app") -> Any:
    return getattr(importlib.import_module(module_name), attribute)


def index(app: Any) -> list[IndexedFunction]:
    """Every function of the app. `get_functions()` may be called only once per app object."""
    out = []
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        methods = tuple(str(getattr(m, "value", m)).upper() for m in (getattr(trigger, "methods", None) or ()))
        out.append(IndexedFunction(
            name=fn.get_function_name(),
            trigger_type=trigger.get_binding_name() if hasattr(trigger, "get_binding_name") else trigger.type,
            func=fn.get_user_function(),
            route=getattr(trigger, "route", None),
            methods=methods,
            queue_name=getattr(trigger, "queue_name", None),
            topic_name=getattr(trigger, "topic_name", None),
            subscription_name=getattr(trigger, "subscription_name", None),
            connection=getattr(trigger, "connection", None),
            schedule=getattr(trigger, "schedule", None),
            run_on_startup=bool(getattr(trigger, "run_on_startup", False)),
            binding_names=tuple(b.name for b in fn.get_bindings()),
        ))
    return out
