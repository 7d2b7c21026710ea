"""In-memory fakes of the ports, with the real ones' conflict behaviour (ETags raise ``StaleRecord``).

Service-level unit tests run on them in milliseconds; the Azurite tests stay the integration tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from appointments.ports import MailMessage


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kw: float) -> None:
        self.current += timedelta(**kw)


@dataclass
class RecordingMailer:
    sent: list[MailMessage] = field(default_factory=list)

    async def send(self, message: MailMessage) -> None:
        self.sent.append(message)

    async def was_sent(self, message: MailMessage) -> bool:
        return bool(message.internet_message_id) and any(
            m.internet_message_id == message.internet_message_id for m in self.sent
        )


