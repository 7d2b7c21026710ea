"""``graph_subscription_upkeep``: acts on one Graph lifecycle notification, off the webhook's path.

The webhook must answer Graph within 3 s, and reauthorizing or recreating a subscription
is a Graph round trip or two; so the webhook starts this orchestration, and its one
activity (``maintain_call_events``) does the work with Durable's retries.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from activities.graph_upkeep import maintain_call_events
from orchestrators.appointment_lifecycle import RETRY

bp = df.Blueprint()

SUBSCRIPTION_UPKEEP_ORCHESTRATOR = "graph_subscription_upkeep"


@bp.function_name(SUBSCRIPTION_UPKEEP_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def graph_subscription_upkeep(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    result = yield context.call_activity_with_retry(maintain_call_events, RETRY, context.get_input())
    return result
