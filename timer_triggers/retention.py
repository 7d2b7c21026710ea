"""Retention as timer triggers (appointments/retention.py says what each sweep keeps).

Schedules are NCRONTAB in UTC. Each run logs its counts as one record (``retention sweep``
with the counts as attributes) and never an identifier of a person. A run that fails is
simply run again at the next tick: every sweep is idempotent and resumable.
"""

import asyncio
import logging
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from adapters import telemetry
from appointments.retention import (
    RetentionPolicy,
    SweepReport,
    erase_personal_data,
    expire_audit,
    purge_durable_history,
    sweep_slots,
)

if TYPE_CHECKING:
    from adapters.retention import TableRetentionStore

bp = df.Blueprint()
log = logging.getLogger(__name__)

# Nightly, staggered, at hours when nobody books; slot holds live minutes, so every 15 minutes.
PERSONAL_DATA_SCHEDULE = "0 15 1 * * *"
DURABLE_SCHEDULE = "0 45 1 * * *"
AUDIT_SCHEDULE = "0 15 2 * * *"
SLOTS_SCHEDULE = "0 */15 * * * *"


def policy() -> RetentionPolicy:
    s = bootstrap.services().settings
    return RetentionPolicy(
        durable_days=s.durable_retention_days,
        personal_data_days=s.personal_data_retention_days,
        audit_years=s.audit_retention_years,
    )


def store() -> "TableRetentionStore":
    # Imported here: azure-data-tables is not needed at cold start.
    from adapters.retention import TableRetentionStore
    from adapters.tables import TableRepository

    s = bootstrap.services()
    assert isinstance(s.repo, TableRepository), "the sweeps run on Table Storage"
    return TableRetentionStore(s.repo, buffer_minutes=s.settings.buffer_minutes)


def report(result: SweepReport) -> SweepReport:
    with telemetry.bind(operation="timer.retention_" + result.sweep):
        log.info(
            "retention sweep %s: %s", result.sweep, result.as_dict(), extra={"retention": result.as_dict()}
        )
        if result.more:
            log.warning("retention sweep %s hit its limit: the next run continues", result.sweep)
    return result


@bp.timer_trigger(schedule=PERSONAL_DATA_SCHEDULE, arg_name="timer", run_on_startup=False)
async def retention_personal_data(timer: func.TimerRequest) -> None:
    now = bootstrap.services().clock.now()
    report(await asyncio.to_thread(erase_personal_data, store(), now, policy()))


@bp.timer_trigger(schedule=AUDIT_SCHEDULE, arg_name="timer", run_on_startup=False)
async def retention_audit(timer: func.TimerRequest) -> None:
    now = bootstrap.services().clock.now()
    report(await asyncio.to_thread(expire_audit, store(), now, policy()))


@bp.timer_trigger(schedule=SLOTS_SCHEDULE, arg_name="timer", run_on_startup=False)
async def retention_slots(timer: func.TimerRequest) -> None:
    now = bootstrap.services().clock.now()
    report(await asyncio.to_thread(sweep_slots, store(), now))


@bp.timer_trigger(schedule=DURABLE_SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def retention_durable(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    from adapters.retention import DurableClientHistory

    now = bootstrap.services().clock.now()
    report(await purge_durable_history(DurableClientHistory(client), now, policy()))
