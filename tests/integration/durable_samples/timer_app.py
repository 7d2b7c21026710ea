"""A timer-triggered function for the devhost tests: each run writes a row with its TimerRequest."""

from __future__ import annotations

import os
import uuid

import azure.functions as func
from azure.data.tables import TableServiceClient

app = func.FunctionApp()

TIMER_RUNS = "SampleTimerRuns"


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def every_minute(timer: func.TimerRequest) -> None:
    connection = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the Functions setting's name
    table = TableServiceClient.from_connection_string(connection).create_table_if_not_exists(TIMER_RUNS)
    table.create_entity(
        {
            "PartitionKey": os.environ["SAMPLE_RUN_KEY"],
            "RowKey": uuid.uuid4().hex,
            "PastDue": timer.past_due,
        }
    )
