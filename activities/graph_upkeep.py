"""Keeping Graph call-event subscriptions alive: the lifecycle-notification activity and the
renewal timer (``appointments.call_events`` holds the rules)."""

import logging
import typing
from typing import Any

import azure.durable_functions as df
import azure.functions as func

import bootstrap

bp = df.Blueprint()
log = logging.getLogger(__name__)

# The worker refuses PEP 585 annotations on binding parameters (see activities.lifecycle).
Payload = typing.Dict[str, Any]  # noqa: UP006 - the worker refuses dict[str, Any]
# Every 6 hours (NCRONTAB with seconds): subscriptions last 3 days and are renewed a day ahead.
RENEWAL_SCHEDULE = "0 0 */6 * * *"


@bp.activity_trigger(input_name="payload")
async def maintain_call_events(payload: Payload) -> str:
    """Act on one lifecycle notification: reauthorize, recreate or reconcile (what was done)."""
    await bootstrap.meetings_ready()
    return str(
        await bootstrap.call_events().on_lifecycle(
            payload["bookingCode"],
            payload["subscriptionId"],
            payload["event"],
            bootstrap.services().clock.now(),
        )
    )


@bp.timer_trigger(schedule=RENEWAL_SCHEDULE, arg_name="timer", run_on_startup=False)
async def renew_graph_subscriptions(timer: func.TimerRequest) -> None:
    """Renew every call-event subscription that expires within a day and is still needed."""
    await bootstrap.meetings_ready()
    counts = await bootstrap.call_events().renew_due(bootstrap.services().clock.now())
    log.info("Graph call-event subscriptions: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
