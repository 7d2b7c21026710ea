"""Mail from the service mailbox behind the ``MailSender`` port: Graph ``sendMail``, at most once.

sendMail answers 202 with no id and is not idempotent, so:

* the transport resends it only after a 429, which Graph answers before it acts on the
  request; never after a 5xx or a lost answer (``BoundedRetryHandler`` in
  ``adapters.graph.client``);
* each mail carries a unique ``internetMessageId`` that the caller derives from its
  idempotency key, and is saved to Sent Items (``saveToSentItems``), so ``was_sent`` can
  ask Sent Items whether an earlier attempt that crashed or lost its answer got through
  (``$filter=internetMessageId eq '…'``). The message resource documents
  ``internetMessageId`` as the RFC 5322 Message-ID, settable while the message is a draft,
  which a sendMail message is until sent
  (https://learn.microsoft.com/en-us/graph/api/resources/message#properties,
  https://learn.microsoft.com/en-us/graph/api/user-sendmail). Reading Sent Items needs
  ``Mail.ReadBasic`` on the service mailbox (scoped with an application access policy).
* The key also travels as the ``X-Idempotency-Key`` message header, so a duplicate that
  still slips through (Sent Items lags the send by seconds) stays visible downstream.

Size: Graph's guidance is 3 MB for attachments in a single request
(https://learn.microsoft.com/en-us/graph/outlook-large-attachments); attachments travel
base64-encoded, so ``MAX_ATTACHMENT_BYTES`` caps their *encoded* size at that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapters.graph.client import load_sdk
from adapters.graph.errors import graph_call
from appointments.ports import MailMessage, PermanentGatewayError

if TYPE_CHECKING:  # pragma: no cover - names for annotations only
    from msgraph.graph_service_client import GraphServiceClient

IDEMPOTENCY_HEADER = "X-Idempotency-Key"  # Graph accepts custom message headers starting with x-
MAX_ATTACHMENT_BYTES = 3_000_000  # base64-encoded, all attachments of one mail together


def encoded_size(raw: int) -> int:
    return 4 * ((raw + 2) // 3)


def mail_body(message: MailMessage) -> Any:
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.file_attachment import FileAttachment
    from msgraph.generated.models.internet_message_header import InternetMessageHeader
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    attachments: list[Any] = [
        FileAttachment(name=name, content_type=content_type, content_bytes=content, is_inline=False)
        for name, content_type, content in message.attachments
    ]
    extra: dict[str, Any] = (
        {"internet_message_id": message.internet_message_id} if message.internet_message_id else {}
    )
    mail = Message(
        subject=message.subject,
        # Graph's JSON message has one body. HTML it is: the text version would need a MIME send.
        body=ItemBody(content_type=BodyType.Html, content=message.html),
        to_recipients=[Recipient(email_address=EmailAddress(address=message.to))],
        attachments=attachments or None,
        internet_message_headers=[
            InternetMessageHeader(name=IDEMPOTENCY_HEADER, value=message.idempotency_key)
        ],
        **extra,
    )
    # Saved to Sent Items: that copy is how a retry learns that the first attempt went out.
    return SendMailPostRequestBody(message=mail, save_to_sent_items=True)


class GraphMailSender:
    """``MailSender`` on Graph ``sendMail`` from one service mailbox."""

    def __init__(self, client: GraphServiceClient, sender_mailbox: str) -> None:
        if not sender_mailbox:
            raise ValueError("GRAPH_SENDER_MAILBOX is not set")
        self._client = client
        self._sender = sender_mailbox

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of the Message-IDs this sender makes."""
        return self._sender.rpartition("@")[2] or "localhost"

    async def send(self, message: MailMessage) -> None:
        load_sdk()
        size = encoded_size(sum(len(content) for _, _, content in message.attachments))
        if size > MAX_ATTACHMENT_BYTES:
            raise PermanentGatewayError(
                f"mail attachments are {size} bytes encoded; sendMail takes at most {MAX_ATTACHMENT_BYTES}",
                status=None,
                code="attachmentsTooLarge",
            )
        action = self._client.users.by_user_id(self._sender).send_mail
        async with graph_call("sendMail"):
            await action.post(mail_body(message))

    async def was_sent(self, message: MailMessage) -> bool:
        """Whether the service mailbox's Sent Items holds a mail with this internetMessageId."""
        if not message.internet_message_id:
            return False
        load_sdk()
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
            MessagesRequestBuilder,
        )

        quoted = message.internet_message_id.replace("'", "''")  # OData string literal
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            filter=f"internetMessageId eq '{quoted}'", select=["id", "internetMessageId"], top=1
        )
        config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        folder = self._client.users.by_user_id(self._sender).mail_folders.by_mail_folder_id("sentitems")
        async with graph_call("look up Sent Items"):
            page = await folder.messages.get(request_configuration=config)
        return any(
            m.internet_message_id == message.internet_message_id for m in (page.value if page else None) or []
        )
