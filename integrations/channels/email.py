"""Email over SMTP with Django's mail machinery, one connection reused for a whole batch.

Message dict: {"to": str, "subject": str, "text": str, "html": str, "from": str (optional)}.
SMTP 4xx and network errors are transient; 5xx are permanent and carry the server's reason.
"""

from __future__ import annotations

import contextlib
import smtplib
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from integrations.channels.base import Channel, ChannelError


class EmailChannel(Channel):
    name = "email"

    def __init__(self) -> None:
        self.connection = None

    def open(self) -> None:
        self.connection = get_connection(fail_silently=False)

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None

    def send(self, message: dict[str, Any], *, idempotency_key: str = "") -> str:
        if self.connection is None:
            self.open()
        message_id = make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN)
        mail = EmailMultiAlternatives(
            subject=message["subject"],
            body=message.get("text") or "",
            from_email=message.get("from") or settings.DEFAULT_FROM_EMAIL,
            to=[message["to"]],
            headers={
                "Message-ID": message_id,
                **({"X-Rowbell-Key": idempotency_key} if idempotency_key else {}),
            },
            connection=self.connection,
        )
        if message.get("html"):
            mail.attach_alternative(message["html"], "text/html")
        try:
            self.connection.open()  # a no-op while the batch's connection is open
            sent = self.connection.send_messages([mail])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            raise _smtp_error(code, reason) from exc
        except smtplib.SMTPResponseException as exc:
            self._drop_connection_unless_alive(exc.smtp_code)
            raise _smtp_error(exc.smtp_code, exc.smtp_error) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise ChannelError(f"The mail server could not be reached: {exc}", permanent=False) from exc
        if not sent:
            raise ChannelError("The mail server did not accept the message.", permanent=False)
        return message_id

    def _drop_connection_unless_alive(self, code: int) -> None:
        # 421 means the server is closing the connection: open a fresh one next time.
        if code == 421:
            self.close()


def _smtp_error(code: int, reason: bytes | str) -> ChannelError:
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return ChannelError(f"The mail server answered {code} {text}", permanent=not (400 <= code < 500))
