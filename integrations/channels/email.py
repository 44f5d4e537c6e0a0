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
from django.core.mail.message import sanitize_address

from integrations.channels.base import Channel, ChannelError


class EmailChannel(Channel):
    name = "email"
    # send(before_data=f) calls f() after MAIL FROM and RCPT TO, before DATA (see runs/engine/sending.py).
    overlaps_envelope = True

    def __init__(self) -> None:
        self.connection = None

    def open(self) -> None:
        self.connection = get_connection(fail_silently=False)

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None

    def send(self, message: dict[str, Any], *, idempotency_key: str = "", before_data=None) -> str:
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
            if before_data is None:
                sent = self.connection.send_messages([mail])
            else:
                sent = _send_in_steps(self.connection, mail, before_data)
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


def _send_in_steps(backend, mail: EmailMultiAlternatives, before_data) -> int:
    """What Django's SMTP backend and smtplib's sendmail do for one message with one recipient, with
    `before_data()` called between the envelope and DATA; if it raises, the transaction is reset
    (RSET) and nothing is handed over."""
    smtp = backend.connection
    if smtp is None:
        return 0
    encoding = mail.encoding or settings.DEFAULT_CHARSET
    sender = sanitize_address(mail.from_email, encoding)
    recipients = [sanitize_address(address, encoding) for address in mail.recipients()]
    data = mail.message().as_bytes(linesep="\r\n")
    smtp.ehlo_or_helo_if_needed()
    options = [f"size={len(data)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    code, reply = smtp.mail(sender, options)
    if code != 250:
        _reset(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for recipient in recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if len(refused) == len(recipients):
        _reset(smtp, 0)
        raise smtplib.SMTPRecipientsRefused(refused)
    try:
        before_data()
    except BaseException:
        with contextlib.suppress(Exception):
            smtp.rset()
        raise
    code, reply = smtp.data(data)
    if code != 250:
        _reset(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    return 1


def _reset(smtp, code: int) -> None:
    if code == 421:
        with contextlib.suppress(Exception):
            smtp.close()
        return
    with contextlib.suppress(Exception):
        smtp.rset()


def _smtp_error(code: int, reason: bytes | str) -> ChannelError:
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return ChannelError(f"The mail server answered {code} {text}", permanent=not (400 <= code < 500))
