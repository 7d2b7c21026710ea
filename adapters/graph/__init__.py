"""Microsoft Graph behind the ``MeetingGateway`` and ``MailSender`` ports (msgraph-sdk).

``client``    the GraphServiceClient: lazy SDK import, credentials, bounded retries and concurrency
``errors``    a failed call → ``TransientGatewayError`` / ``PermanentGatewayError``
``meetings``  onlineMeetings and their call-event subscriptions
``schedule``  getSchedule, batched by 20 and by period, cached briefly
``mail``      sendMail at most once per internetMessageId

Importing this package imports neither msgraph nor azure.identity (cold start is a
product metric); ``warm_up()`` pays those costs, plus the first model (de)serialisation,
off the request path.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.graph.client import DEV_TOKEN, RetryPolicy, build_graph_client, is_loopback, load_sdk
from adapters.graph.mail import IDEMPOTENCY_HEADER, MAX_ATTACHMENT_BYTES, GraphMailSender, mail_body
from adapters.graph.meetings import MAX_SUBSCRIPTION_LIFETIME, GraphMeetingGateway, meeting_settings_patch
from appointments.ports import MailMessage

__all__ = [
    "DEV_TOKEN",
    "IDEMPOTENCY_HEADER",
    "MAX_ATTACHMENT_BYTES",
    "MAX_SUBSCRIPTION_LIFETIME",
    "GraphMailSender",
    "GraphMeetingGateway",
    "RetryPolicy",
    "build_graph_client",
    "is_loopback",
    "load_sdk",
    "warm_up",
]


def warm_up() -> None:
    """Pay msgraph's cold costs now: imports plus the first (de)serialisation of every model used.

    Synchronous and network-free; call it off the request path (a worker-start hook, or
    ``asyncio.to_thread(warm_up)`` at the start of the first activity).
    """
    load_sdk()
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from kiota_serialization_json.json_serialization_writer_factory import (
        JsonSerializationWriterFactory,
    )
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.online_meeting import OnlineMeeting
    from msgraph.generated.models.subscription import Subscription
    from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_response import (
        GetSchedulePostResponse,
    )

    samples: list[tuple[Any, dict[str, Any]]] = [
        (
            OnlineMeeting,
            {"id": "x", "joinWebUrl": "https://x", "lobbyBypassSettings": {"scope": "organizer"}},
        ),
        (Subscription, {"id": "x", "expirationDateTime": "2030-01-01T00:00:00Z"}),
        (GetSchedulePostResponse, {"value": [{"scheduleId": "x", "scheduleItems": []}]}),
        (ODataError, {"error": {"code": "x"}}),
    ]
    parse = JsonParseNodeFactory()
    for model, payload in samples:
        node = parse.get_root_parse_node("application/json", json.dumps(payload).encode())
        node.get_object_value(model)
    writer = JsonSerializationWriterFactory().get_serialization_writer("application/json")
    writer.write_object_value(None, meeting_settings_patch(None, None, None))
    writer.write_object_value(None, mail_body(MailMessage("a@b.c", "s", "t", "<p>h</p>", "k")))
    writer.get_serialized_content()
