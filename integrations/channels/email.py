"""Email with Django's mail machinery, one connection per provider reused for a whole batch.

The message is an `EmailTransport` (below): to, subject, text, html, from, reply_to, cc, bcc, headers
(e.g. List-Unsubscribe) and provider (None: the platform's EMAIL_* backend).
A provider's kind gives the backend (its SMTP server, or an ESP through anymail), its error mapping and
the id its tracking events will name (integrations/email_providers/); without a provider, the platform's
own server is that kind (integrations/email_providers/platform.py), with the same rules.
SMTP 4xx and network errors are transient; 5xx are permanent and carry the server's reason. A 5xx
answer to RCPT names the refused address (`ChannelError.refused_address`): the step suppresses it.
An ESP's 429, 5xx and unreachable API are transient; its other refusals (4xx, rejected recipients)
permanent, with the ESP's own message. Several messages of a batch are in flight at once (the engine asks
the step, which asks the provider's kind, `EmailProviderKind.messages_in_flight`): through an ESP's HTTP
API, ENGINE_SEND_CONCURRENCY; through SMTP, EMAIL_SMTP_CONNECTIONS. Each sending thread has its own channel, so its own backends (its own SMTP
connection; anymail's `requests` session is not shared between threads).
"""

from __future__ import annotations

import contextlib
import functools
import smtplib
from collections.abc import Iterator
from email.utils import make_msgid
from typing import TYPE_CHECKING, Any, Required, TypedDict

from django import forms
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address

from integrations.channels.base import Channel, ChannelError, Handover
from integrations.email_providers.base import LOOKUP_METADATA
from integrations.email_providers.platform import PLATFORM
from integrations.failures import unreachable
from integrations.outbound import OutboundRefused

if TYPE_CHECKING:
    from integrations.email_providers.base import EmailProviderKind
    from integrations.models import Provider

# One email as the channel takes it (the send step's `render`, a provider's test send). "from" is a
# Python keyword, hence the functional form.
EmailTransport = TypedDict(
    "EmailTransport",
    {
        "to": Required[str],
        "subject": Required[str],
        "text": str,
        "html": str,
        "from": str,
        "reply_to": str,
        "cc": list[str],
        "bcc": list[str],
        "headers": dict[str, str],  # e.g. List-Unsubscribe
        "provider": Required["Provider | None"],  # None: the platform's EMAIL_* server
        "sender": str,  # the Sender's name, as the activity log shows it
        "original_to": str,  # a test run's override: whom the message was for
    },
    total=False,
)


class EmailChannel(Channel[EmailTransport]):
    reports_events = True  # providers with a tracking webhook (runs/provider_tracking.py)
    label = "Email"
    test_noun = "email"

    def test_recipient_field(self) -> forms.Field:
        return forms.EmailField(label="To", help_text="Where the test email goes.")

    def test_extra_fields(self, provider: Any) -> dict[str, forms.Field]:
        sender = forms.ModelChoiceField(
            queryset=provider.senders.order_by("name"), required=False, label="From"
        )
        sender.empty_label = "Rowbell's default From address"
        return {"sender": sender}

    def test_recipient_initial(self, user: Any) -> str:
        return getattr(user, "email", "") or ""

    def test_message(self, provider: Any, data: dict[str, Any]) -> EmailTransport:
        sender = data.get("sender")
        return {
            "to": data["to"],
            "subject": f"Rowbell test email through {provider.name}",
            "text": f"This test email went through the email provider “{provider.name}” "
            f"({provider.kind_module.label}).",
            "from": sender.from_header if sender else settings.DEFAULT_FROM_EMAIL,
            "reply_to": sender.reply_to if sender else "",
            "provider": provider,
        }

    def __init__(self) -> None:
        self.connection: Any = None  # the backend of the message being sent
        self.kind: Any = None  # its provider kind (the platform's server: PLATFORM)
        self._backends: dict[int | None, tuple[Any, Any]] = {}
        # A batch sends from one address: parsing it again for every message costs a fifth of composing.
        self._sanitized: dict[tuple[str, str], str] = {}

    def open(self) -> None:
        """Nothing to do yet: each provider's connection opens with its batch's first message."""

    def close(self) -> None:
        for backend, _kind in self._backends.values():
            with contextlib.suppress(Exception):
                backend.close()
        self._backends.clear()
        self.connection = None

    def _use(self, provider: Provider | None) -> None:
        """Make `provider`'s backend (built once per batch) the current one."""
        key = provider.pk if provider is not None else None
        if key not in self._backends:
            kind = provider.kind_module if provider is not None else PLATFORM
            with self._provider_errors(kind):
                try:
                    self._backends[key] = (kind.open_backend(provider), kind)
                except OSError as exc:  # e.g. SES's endpoint name does not resolve now
                    raise ChannelError(f"The provider could not be reached: {exc}", permanent=False) from exc
        self.connection, self.kind = self._backends[key]

    def _drop(self) -> None:
        """Close the current connection (lost or closing): the next message opens a fresh one."""
        for key, (backend, _kind) in list(self._backends.items()):
            if backend is self.connection:
                with contextlib.suppress(Exception):
                    backend.close()
                del self._backends[key]

    def send(self, message: EmailTransport, *, idempotency_key: str = "") -> str:
        return self.begin(message, idempotency_key=idempotency_key).complete()

    def begin(self, message: EmailTransport, *, idempotency_key: str = "") -> Handover:
        """MAIL FROM and RCPT TO now; DATA (the message itself) in `complete()`.

        The envelope delivers nothing, so the engine sends it while the Delivery row is being committed.
        A backend other than SMTP (console, file, locmem) gets the whole message in `complete()`.
        """
        self._use(message.get("provider"))
        mail = self._compose(message, idempotency_key)
        if not isinstance(self.connection, SMTPBackend):
            return Handover(functools.partial(self._send_whole, mail, self.connection, self.kind))
        with self._smtp_errors():
            self.connection.open()  # a no-op while the batch's connection is open
            smtp = self.connection.connection
            assert smtp is not None, "open() connected it"
            encoding = mail.encoding or settings.DEFAULT_CHARSET
            sender = self._sanitized_sender(mail.from_email, encoding)
            recipients = [sanitize_address(address, encoding) for address in mail.recipients()]
            body = mail.message().as_bytes(linesep="\r\n")
            # What smtplib's sendmail does before DATA, with Django's sanitised addresses and bytes.
            smtp.ehlo_or_helo_if_needed()
            size = [f"size={len(body)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
            code, reply = smtp.mail(sender, size)
            if code != 250:
                _reset(smtp)
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                if code not in (250, 251):
                    _reset(smtp)
                    raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})

        def complete() -> str:
            with self._smtp_errors():
                try:
                    code, reply = smtp.data(body)
                    if code != 250:
                        raise smtplib.SMTPDataError(code, reply)
                except smtplib.SMTPDataError:
                    _reset(smtp)  # a refused DATA must not leave the envelope to the next message
                    raise
            return str(mail.extra_headers["Message-ID"])

        return Handover(complete, abandon=lambda: _reset(smtp))

    def _sanitized_sender(self, address: str, encoding: str) -> str:
        key = (address, encoding)
        if key not in self._sanitized:
            self._sanitized[key] = sanitize_address(address, encoding)
        return self._sanitized[key]

    def _compose(self, message: EmailTransport, idempotency_key: str) -> EmailMultiAlternatives:
        mail = EmailMultiAlternatives(
            subject=message["subject"],
            body=message.get("text") or "",
            from_email=message.get("from") or settings.DEFAULT_FROM_EMAIL,
            to=[message["to"]],
            cc=message.get("cc") or [],
            bcc=message.get("bcc") or [],
            reply_to=[message["reply_to"]] if message.get("reply_to") else [],
            headers={
                "Message-ID": make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN),
                **({"X-Rowbell-Key": idempotency_key} if idempotency_key else {}),
                **_clean_headers(message.get("headers") or {}),
            },
            connection=self.connection,
        )
        if message.get("html"):
            mail.attach_alternative(message["html"], "text/html")
        if idempotency_key and getattr(self.kind, "can_look_up", False):
            # The ESP keeps it with the message, so Rowbell can ask later whether it accepted it.
            mail.metadata = {LOOKUP_METADATA: idempotency_key}  # type: ignore[attr-defined]
        return mail

    def _send_whole(self, mail: EmailMultiAlternatives, backend: Any, kind: EmailProviderKind) -> str:
        self.connection, self.kind = backend, kind
        with self._smtp_errors():
            backend.open()
            sent = backend.send_messages([mail])
        if not sent:
            raise ChannelError("The mail server did not accept the message.", permanent=False)
        # An ESP's own id (its events refer to it), else the Message-ID.
        return kind.message_id(mail) or str(mail.extra_headers["Message-ID"])

    @contextlib.contextmanager
    def _provider_errors(self, kind: EmailProviderKind) -> Iterator[None]:
        """A provider's own errors (an ESP's API answer, a refused address) as its kind maps them."""
        try:
            yield
        except ChannelError:
            raise
        except Exception as exc:
            mapped = kind.map_error(exc)
            if isinstance(exc, OutboundRefused) and mapped is None:
                mapped = ChannelError(exc.message, permanent=True)
            if mapped is None:
                raise
            raise mapped from exc

    @contextlib.contextmanager
    def _smtp_errors(self) -> Iterator[None]:
        """The server's refusals and lost connections as ChannelErrors (4xx and network: transient)."""
        try:
            with self._provider_errors(self.kind):
                yield
        except smtplib.SMTPRecipientsRefused as exc:
            address, (code, reason) = next(iter(exc.recipients.items()))
            error = _smtp_error(code, reason)
            if error.permanent:
                error.refused_address = address
            raise error from exc
        except smtplib.SMTPResponseException as exc:
            self._drop_connection_unless_alive(exc.smtp_code)
            raise _smtp_error(exc.smtp_code, exc.smtp_error) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()
            raw = f"The mail server could not be reached: {exc}"
            host, port = getattr(self.connection, "host", None), getattr(self.connection, "port", None)
            message = unreachable(f"{host}:{port}", exc, raw) if host and isinstance(exc, OSError) else raw
            raise ChannelError(message, permanent=False) from exc

    def _drop_connection_unless_alive(self, code: int) -> None:
        # 421 means the server is closing the connection: open a fresh one next time.
        if code == 421:
            self._drop()


def _smtp_error(code: int, reason: bytes | str) -> ChannelError:
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return ChannelError(f"The mail server answered {code} {text}", permanent=not (400 <= code < 500))


def _clean_headers(headers: dict[str, str]) -> dict[str, str]:
    """Extra headers without CR or LF (no header injection), whatever built them."""
    return {
        str(name).replace("\r", "").replace("\n", ""): str(value).replace("\r", " ").replace("\n", " ")
        for name, value in headers.items()
    }


def _reset(smtp: smtplib.SMTP) -> None:
    """Abandon the transaction begun on this connection (smtplib's sendmail does the same on refusals)."""
    with contextlib.suppress(smtplib.SMTPServerDisconnected, OSError):
        smtp.rset()
