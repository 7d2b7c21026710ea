"""The Durable purge through the durable client against a devhost (a real task hub on Azurite)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from adapters.retention import DurableClientHistory
from appointments.retention import RetentionPolicy, purge_durable_history
from devhost.durable.api import binding_json
from devhost.testing import DevhostProcess

POLICY = RetentionPolicy(durable_days=30)


def test_finished_orchestrations_are_purged_after_the_retention_days(devhost: DevhostProcess) -> None:
    """Through the durable client on a devhost: finished and old enough goes; running or recent stays."""
    host = devhost
    done = host.start_orchestration("chain")
    waiting = host.start_orchestration("waiter")
    host.wait_for_status(done, "Completed")
    host.wait_for_status(waiting, "Running")
    client = df.DurableOrchestrationClient(binding_json(host.base_url, host.task_hub))
    history = DurableClientHistory(client)
    now = datetime.fromisoformat(host.now())

    async def sweeps() -> list[Any]:
        # One event loop for every call: the SDK keeps one aiohttp session per process.
        early = await purge_durable_history(history, now + timedelta(days=29), POLICY)
        status_after_early = host.status(done)["runtimeStatus"]
        late = await purge_durable_history(history, now + timedelta(days=31), POLICY)
        again = await purge_durable_history(history, now + timedelta(days=31), POLICY)
        return [early, status_after_early, late, again]

    early, status_after_early, late, again = asyncio.run(sweeps())
    assert early.changed == 0 and status_after_early == "Completed"
    assert late.changed == 1
    assert host.status(done) == {} and host.status(waiting)["runtimeStatus"] == "Running"
    assert again.changed == 0
