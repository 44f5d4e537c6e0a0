"""What the ESP kinds share: an anymail backend built from the provider's own record (never from settings),
its HTTP through the checked, pinned session, and the answer of the ESP's API mapped to transient/permanent.

Tracking: the ESP's webhook is read by anymail's own tracking view for that ESP, given this provider's
secrets instead of Django settings (HTTP basic auth with the provider's webhook credentials, plus
Mailgun's HMAC signature and SendGrid's signed-webhook key when set), and anymail's normalised events
become channel-neutral `TrackingEvent`s (integrations/providers/tracking.py).

Errors: no answer (network, timeout), 429 and 5xx are transient; bad credentials (401, 403), an unverified
sender, an invalid or suppressed recipient (other 4xx, anymail's AnymailRecipientsRefused) are permanent. The
ESP's own message is kept in the error, which the run page and the provider page show.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any, ClassVar

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailRecipientsRefused,
    AnymailWebhookValidationFailure,
)
from django import forms
from django.http import HttpRequest
from django.utils.module_loading import import_string

from integrations.channels.base import ChannelError, parse_retry_after
from integrations.email_providers.base import EmailProviderKind
from integrations.failures import behind
from integrations.outbound import OutboundRefused, check_scheme, check_url_at_save, checked_session
from integrations.providers.tracking import (
    EVENT_KINDS,
    TrackingEvent,
    TrackingRefused,
    TrackingUnreadable,
)

logger = logging.getLogger(__name__)
CREDENTIAL_STATUSES = (401, 403)


def api_url_field(default: str) -> forms.CharField:
    return forms.CharField(
        label="API URL",
        required=False,
        max_length=500,
        help_text=f"Leave empty for {default} (a region's or a proxy's URL otherwise).",
    )


def outbound_refusal(exc: BaseException) -> OutboundRefused | None:
    """The OutboundRefused behind `exc` (raised inside requests or anymail), if that is what it is."""
    return behind(exc, OutboundRefused)


class AnymailKind(EmailProviderKind):
    backend: ClassVar[str] = ""  # dotted path of anymail's backend
    default_api_url: ClassVar[str] = ""
    sends_over_http = True
    # anymail's tracking view for this ESP (it checks the request and parses the payload).
    tracking_view: ClassVar[type | None] = None

    @property
    def has_tracking_webhook(self) -> bool:
        return self.tracking_view is not None

    def tracking_kwargs(self, provider) -> dict[str, Any]:
        """What anymail's tracking view would read from settings, from this provider's own record."""
        return {"webhook_secret": [provider.webhook_credentials]}

    def bounce_kind(self, event) -> str:
        """ "hard" or "soft" for a bounced event (anymail does not say; each ESP's payload does)."""
        return "hard"

    def rejects_address(self, event) -> bool:
        """Whether a `rejected` event refuses the address itself for good (the ESP's suppression list:
        SendGrid's "dropped" for a bounced, invalid or spam-reporting address, Mailgun's "suppress-bounce",
        Brevo's "blocked"), which anymail reports as `reject_reason` bounced, invalid or spam."""
        return getattr(event, "reject_reason", None) in ("bounced", "invalid", "spam")

    def permanence(self, event, kind: str) -> str:
        """ "hard" or "soft" for a bounce; "hard" for a rejection of the address itself (then suppressed)."""
        if kind == "bounced":
            return self.bounce_kind(event)
        return "hard" if kind == "rejected" and self.rejects_address(event) else ""

    def read_tracking(self, provider, request: HttpRequest) -> list[TrackingEvent]:
        if self.tracking_view is None:
            raise NotImplementedError(f"{self.label} has no tracking webhook")
        if not request.META.get("HTTP_AUTHORIZATION"):
            raise TrackingRefused("Basic authentication required.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # anymail's "insecure webhook" / "SendGrid support" warnings
                view = self.tracking_view(**self.tracking_kwargs(provider))
        except (ValueError, TypeError, AnymailError) as exc:
            # The provider's own webhook settings are unusable (a SendGrid key that is not a public key,
            # saved before the form checked it): nothing can be verified, so nothing is read.
            logger.warning("Tracking webhook of provider %s cannot verify requests: %s", provider.pk, exc)
            raise TrackingRefused(
                f"This provider's webhook settings cannot verify requests: {_first_line(exc)}"
            ) from exc
        view.setup(request)
        try:
            view.run_validators(request)
        except AnymailWebhookValidationFailure as exc:
            logger.info("Tracking webhook of provider %s refused: %s", provider.pk, exc)
            raise TrackingRefused("Wrong credentials or signature.") from exc
        except Exception as exc:  # a body anymail cannot even validate (bad JSON, wrong SNS type...)
            raise TrackingUnreadable(_first_line(exc)) from exc
        try:
            events = view.parse_events(request)
        except Exception as exc:
            logger.info("Tracking webhook of provider %s unparsable: %s", provider.pk, exc)
            raise TrackingUnreadable(_first_line(exc)) from exc
        return [self.tracking_event(event) for event in events]

    def tracking_event(self, event) -> TrackingEvent:
        """anymail's normalised event as a channel-neutral one (its id, or none, kept as given)."""
        kind = getattr(event, "event_type", None) or ""
        event_id = getattr(event, "event_id", None)
        return TrackingEvent(
            kind=kind if kind in EVENT_KINDS else "",
            message_id=str(getattr(event, "message_id", None) or ""),
            occurred_at=getattr(event, "timestamp", None),
            recipient=str(getattr(event, "recipient", None) or ""),
            bounce=self.permanence(event, kind),
            description=str(getattr(event, "description", None) or ""),
            mta_response=str(getattr(event, "mta_response", None) or ""),
            click_url=str(getattr(event, "click_url", None) or ""),
            event_id=str(event_id) if event_id else "",
        )

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
        return checked_session(super().create_session())  # type: ignore[misc]  # the anymail backend's


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


def _first_line(exc: BaseException) -> str:
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
