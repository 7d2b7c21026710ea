"""Timer-triggered functions on the devhost: NCRONTAB schedules on the devhost clock, past-due
runs at start and refusals at load, as the Functions timer extension and host behave."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from devhost.testing import DevhostProcess

TIMER_APP = "tests.integration.durable_samples.timer_app:app"
ENTITY_APP = "tests.integration.durable_samples.entity_app:app"


def runs(connection: str, key: str) -> list[dict[str, Any]]:
    table = TableServiceClient.from_connection_string(connection).create_table_if_not_exists(
        "SampleTimerRuns"
    )
    return [dict(e) for e in table.query_entities("PartitionKey eq @k", parameters={"k": key})]


def timer_host(connection: str, schedule: str, key: str, **kwargs: Any) -> DevhostProcess:
    env = {"SAMPLE_SCHEDULE": schedule, "SAMPLE_RUN_KEY": key}
    return DevhostProcess(TIMER_APP, storage=connection, clock="frozen", env=env, **kwargs)


def test_timer_runs_once_per_occurrence_as_the_clock_passes_it(storage_connection_string: str) -> None:
    """Every five minutes: nothing before the occurrence, one run at it, one late run for a missed
    day; the runOnStartup function ran once at start."""
    key = uuid.uuid4().hex
    with timer_host(storage_connection_string, "0 */5 * * * *", key) as host:
        assert "Timer        every_minute  [0 */5 * * * *]" in host.output()
        host.wait_idle()
        assert [r["PastDue"] for r in runs(storage_connection_string, f"{key}-startup")] == [False]
        # The frozen clock starts at wall time: move it to 30 s past the next five-minute mark, so
        # that the one-second step below can never cross the mark after it.
        start = datetime.fromisoformat(host.now())
        mark = start.replace(second=0, microsecond=0) + timedelta(minutes=5 - start.minute % 5)
        r = host.post("/dev/clock/set", json={"now": (mark + timedelta(seconds=30)).isoformat()})
        assert r.status_code == 200 and r.json()["settled"]
        assert len(runs(storage_connection_string, key)) == 1
        host.advance(seconds=1)
        assert len(runs(storage_connection_string, key)) == 1
        host.advance(days=1)
        done = runs(storage_connection_string, key)
        assert len(done) == 2
        assert not any(r["PastDue"] for r in done)


def test_missed_occurrence_runs_at_start_as_past_due(storage_connection_string: str) -> None:
    """A recorded Next that passed while the host was down: one immediate run with IsPastDue."""
    key, hub = uuid.uuid4().hex, f"T{uuid.uuid4().hex[:12]}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    status = {
        "Last": hour.isoformat(),
        "Next": (hour + timedelta(hours=1)).isoformat(),
        "LastUpdated": hour.isoformat(),
    }
    container = BlobServiceClient.from_connection_string(storage_connection_string).get_container_client(
        "azure-webjobs-hosts"
    )
    if not container.exists():
        container.create_container()
    container.upload_blob(
        f"timers/{hub.lower()}/Host.Functions.every_minute/status", json.dumps(status), overwrite=True
    )
    with timer_host(storage_connection_string, "0 0 * * * *", key, task_hub=hub) as host:
        host.wait_idle()
        done = runs(storage_connection_string, key)
        assert [r["PastDue"] for r in done] == [True]
        saved = json.loads(
            container.download_blob(f"timers/{hub.lower()}/Host.Functions.every_minute/status").readall()
        )
        assert datetime.fromisoformat(saved["Next"].replace("Z", "+00:00")) > datetime.now(UTC)


@pytest.mark.parametrize("schedule", ["every minute", "0 0 25 * * *"])
def test_a_schedule_the_extension_rejects_stops_the_devhost_naming_the_function(
    storage_connection_string: str, schedule: str
) -> None:
    """Not an NCRONTAB expression or a TimeSpan: refused at load, nothing runs."""
    host = timer_host(storage_connection_string, schedule, uuid.uuid4().hex)
    with pytest.raises(RuntimeError, match="every_minute"):
        host.start()
    assert "was not recognized as a valid cron expression" in host.output()
    host.close()


def test_an_app_with_an_entity_is_refused_at_load_naming_it(storage_connection_string: str) -> None:
    """The devhost does not run Durable entities: it says so and which function, instead of hanging."""
    host = DevhostProcess(ENTITY_APP, storage=storage_connection_string)
    with pytest.raises(RuntimeError, match="counter_entity"):
        host.start()
    assert "does not run Durable entities" in host.output()
    host.close()
