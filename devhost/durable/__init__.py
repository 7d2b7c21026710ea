"""The devhost's durable engine: Durable Functions orchestrations on the SDK's own replay code."""

from .engine import Engine
from .registry import FunctionFailed, FunctionRunner
from .store import TaskHubStore

__all__ = ["Engine", "FunctionFailed", "FunctionRunner", "TaskHubStore"]
