"""A timer-triggered function for the devhost tests: each run writes a row with its TimerRequest."""

from __future__ import annotations

import os
import uuid

import azure.functions as func
from azure.data.tables import TableServiceClient

app = func.FunctionApp()

TIMER_RUNS = "SampleTimerRuns"


def _record(key: str, timer: func.TimerRequest) -> None:
    connection = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the Functions setting's name
    table = TableServiceClient.from_connection_string(connection).create_table_if_not_exists(TIMER_RUNS)
    table.create_entity({"PartitionKey": key, "RowKey": uuid.uuid4().hex, "PastDue": timer.past_due})


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def every_minute(timer: func.TimerRequest) -> None:
    _record(os.environ["SAMPLE_RUN_KEY"], timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def at_startup(timer: func.TimerRequest) -> None:
    """Once a year, and once whenever the host starts (runOnStartup)."""
    _record(os.environ["SAMPLE_RUN_KEY"] + "-startup", timer)
