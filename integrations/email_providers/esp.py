"""What the ESP kinds share: an anymail backend built from the provider's own record (never from settings),
its HTTP through the checked, pinned session, and the answer of the ESP's API mapped to transient/permanent.

Errors: no answer (network, timeout), 429 and 5xx are transient; bad credentials (401, 403), an unverified
sender, an invalid or suppressed recipient (other 4xx, anymail's AnymailRecipientsRefused) are permanent. The
ESP's own message is kept in the error, which the run page and the provider page show.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.utils.module_loading import import_string

from integrations.channels.base import ChannelError, parse_retry_after
from integrations.email_providers.base import EmailProviderKind, ProviderField
from integrations.failures import behind
from integrations.outbound import OutboundRefused, check_scheme, check_url_at_save, checked_session

CREDENTIAL_STATUSES = (401, 403)


def api_url_field(default: str) -> ProviderField:
    return ProviderField(
        "api_url",
        "API URL",
        required=False,
        help=f"Leave empty for {default} (a region's or a proxy's URL otherwise).",
    )


def outbound_refusal(exc: BaseException) -> OutboundRefused | None:
    """The OutboundRefused behind `exc` (raised inside requests or anymail), if that is what it is."""
    return behind(exc, OutboundRefused)


class AnymailKind(EmailProviderKind):
    backend: ClassVar[str] = ""  # dotted path of anymail's backend
    default_api_url: ClassVar[str] = ""
    sends_over_http = True

    def backend_kwargs(self, provider) -> dict[str, Any]:
        """The anymail settings this backend reads, from the provider's record (most ESPs: an API key)."""
        return {"api_key": provider.secret_values.get("api_key", ""), "api_url": self.api_url(provider)}

    def clean(self, settings: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
        url = (settings.get("api_url") or "").strip()
        if url:
            try:
                check_scheme(url)
            except OutboundRefused as exc:
                return {"api_url": exc.message}
            problem = check_url_at_save(url)
            if problem:
                return {"api_url": problem}
        return {}

    def open_backend(self, provider) -> Any:
        backend_class = import_string(self.backend)
        pinned = type(f"Checked{backend_class.__name__}", (_CheckedSessionMixin, backend_class), {})
        return pinned(fail_silently=False, **self.backend_kwargs(provider))

    def api_url(self, provider) -> str:
        return (provider.settings.get("api_url") or "").strip() or self.default_api_url

    def message_id(self, mail) -> str:
        status = getattr(mail, "anymail_status", None)
        return (status.message_id or "") if status is not None else ""

    def map_error(self, exc: Exception) -> ChannelError | None:
        refused = outbound_refusal(exc)
        if refused is not None:
            return ChannelError(refused.message, permanent=True)
        if isinstance(exc, AnymailRecipientsRefused):
            return ChannelError(
                f"{self.label} refused the recipient: {_recipient_statuses(exc)}: {self._said(exc)}"[:500],
                permanent=True,
                refused_address=inactive_recipient(exc),
            )
        if isinstance(exc, AnymailAPIError):
            return self.api_error(exc)
        if isinstance(exc, AnymailError):
            return ChannelError(f"{self.label}: {_first_line(exc)}", permanent=True)
        return None

    def api_error(self, exc: AnymailAPIError) -> ChannelError:
        status = exc.status_code
        if status is None:
            return ChannelError(f"{self.label} could not be reached: {_cause(exc)}", permanent=False)
        said = self.provider_message(exc.response) or _first_line(exc)
        if status in CREDENTIAL_STATUSES:
            return ChannelError(
                f"{self.label} refused the credentials (HTTP {status}): {said}", permanent=True
            )
        transient = status == 429 or status >= 500
        headers = getattr(exc.response, "headers", None) or {}
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return ChannelError(
            f"{self.label} answered HTTP {status}: {said}",
            permanent=not transient,
            throttled=status == 429 or (transient and retry_after is not None),
            retry_after=retry_after,
        )

    def _said(self, exc: AnymailError) -> str:
        """The ESP's own words about a refusal: from its response when anymail kept it, else anymail's."""
        response = getattr(exc, "response", None)
        said = self.provider_message(response) if response is not None else ""
        return said or " ".join(str(exc).split())[:300]

    def provider_message(self, response) -> str:
        """The ESP's own words from its error response (most put them under "message")."""
        body = _json(response)
        if isinstance(body, dict):
            for key in ("message", "Message", "error", "detail"):
                if isinstance(body.get(key), str):
                    return body[key]
        return _text(response)


# How long a lookup (is this message there?) may take: it runs in a batch, for an uncertain message.
LOOKUP_TIMEOUT_SECONDS = 10


def lookup_json(url: str, **kwargs) -> Any:
    """GET `url` from the ESP's API through the checked session; its JSON, or None when there is no
    usable answer (then the message stays uncertain: nothing is decided on a guess)."""
    import requests

    session = checked_session(requests.Session())
    try:
        response = session.get(url, timeout=LOOKUP_TIMEOUT_SECONDS, **kwargs)
    except (requests.RequestException, OSError, OutboundRefused):
        return None
    finally:
        session.close()
    if response.status_code != 200:
        return None
    return _json(response)


class _CheckedSessionMixin:
    """Every request of the anymail backend through integrations/outbound.py (address checked and pinned)."""

    def create_session(self):
        return checked_session(super().create_session())


def _json(response) -> Any:
    try:
        return json.loads(response.text)
    except (AttributeError, ValueError, TypeError):
        return None


def _text(response) -> str:
    try:
        return (response.text or "").strip()[:300]
    except AttributeError:
        return ""


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _cause(exc: Exception) -> str:
    cause = exc.__cause__
    return _first_line(cause) if cause is not None else _first_line(exc)


def inactive_recipient(exc: AnymailRecipientsRefused) -> str:
    """The address the ESP refuses for good, as an SMTP 550 at RCPT does: anymail's "rejected" status,
    which it gives to Postmark's inactive recipients (HTTP 422, ErrorCode 406: a hard bounce or a spam
    complaint before) and to each ESP's equivalent refusal at send time. Not "invalid" (a malformed
    address, refused before it is tried). "" when none."""
    message = getattr(exc, "email_message", None)
    status = getattr(message, "anymail_status", None)
    recipients = getattr(status, "recipients", None) or {}
    for email, recipient in recipients.items():
        if getattr(recipient, "status", "") == "rejected":
            return email
    return ""


def _recipient_statuses(exc: AnymailRecipientsRefused) -> str:
    message = getattr(exc, "email_message", None)
    status = getattr(message, "anymail_status", None)
    recipients = getattr(status, "recipients", None) or {}
    parts = [f"{email} {getattr(s, 'status', '')}".strip() for email, s in recipients.items()]
    return ", ".join(parts) or _first_line(exc)
