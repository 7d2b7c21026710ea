"""What can be booked: topics, channels and the expert directory. Public reads."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from appointments.catalogue import CHANNEL_LABELS, LANGUAGES, TOPICS, Channel
from appointments.errors import Problems
from http_triggers.common import call
from http_triggers.problem import json_response, problems_as_responses

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


@bp.route(route="topics", methods=["GET"])
@problems_as_responses
async def list_topics(req: func.HttpRequest) -> func.HttpResponse:
    topics = [
        {"id": t.id, "group": t.group, "name": t.name, "label": {lang: t.label(lang) for lang in LANGUAGES}}
        for t in TOPICS.values()
    ]
    channels = [{"id": c.value, "label": CHANNEL_LABELS[c]} for c in Channel]
    settings = bootstrap.services().settings
    return json_response(
        {
            "topics": topics,
            "channels": channels,
            "durations": list(settings.allowed_durations),
            # What the portal needs to offer only what the rules allow, and whom to call.
            "changeNoticeHours": settings.change_notice_hours,
            "minLeadMinutes": settings.min_lead_minutes,
            "servicePhone": settings.bank_service_phone,
        }
    )


@bp.route(route="experts", methods=["GET"])
@problems_as_responses
async def list_experts(req: func.HttpRequest) -> func.HttpResponse:
    # An empty value is a value (and not one of the allowed ones), not a missing filter.
    topic = req.params.get("topic")
    language = req.params.get("language")
    channel_raw = req.params.get("channel")
    p = Problems()
    if language is not None and language not in LANGUAGES:
        p.add("language", "language_invalid")
    channel = None
    if channel_raw is not None:
        try:
            channel = Channel(channel_raw)
        except ValueError:
            p.add("channel", "channel_invalid", channels=[c.value for c in Channel])
    p.raise_if_any()
    experts = await call(bootstrap.services().appointments.experts, topic, language, channel)
    return json_response(
        {
            "experts": [
                {
                    "id": x.expert_id,
                    "displayName": x.display_name,
                    "title": x.title,
                    "bank": x.bank,
                    "topics": list(x.topics),
                    "languages": list(x.languages),
                    "channels": [c.value for c in x.channels],
                }
                for x in experts
            ]
        }
    )
