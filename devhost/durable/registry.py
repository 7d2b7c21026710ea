"""The app's orchestrators and activities, read from the ``DFApp`` itself (no second table)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Activity:
    fn: Callable[..., Any]
    param: str
    is_async: bool


@dataclass(frozen=True)
class Registry:
    orchestrators: dict[str, Callable[[Any], str]] = field(default_factory=dict)
    activities: dict[str, Activity] = field(default_factory=dict)

    @classmethod
    def from_functions(cls, functions: list[Any]) -> Registry:
        """``functions`` is ``app.get_functions()``: call that once, a second call raises."""
        orchestrators: dict[str, Callable[[Any], str]] = {}
        activities: dict[str, Activity] = {}
        for fn in functions:
            for binding in fn.get_bindings_dict().get("bindings", []):
                kind = binding.get("type")
                if kind == "orchestrationTrigger":
                    orchestrators[fn.get_function_name()] = fn.get_user_function()
                elif kind == "activityTrigger":
                    user = fn.get_user_function()
                    activities[fn.get_function_name()] = Activity(
                        fn=user, param=binding["name"], is_async=inspect.iscoroutinefunction(user)
                    )
        return cls(orchestrators, activities)
