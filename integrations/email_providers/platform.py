"""The platform's own mail server (the operator's EMAIL_* settings, Django's configured backend): the
provider of a sender that names none, and of Rowbell's own mail. A kind like the tenants' ESPs, so that one
error map and one in-flight decision cover every email: when EMAIL_BACKEND is an anymail ESP, its refusals
map as any ESP's do and several messages are in flight; through SMTP, the email channel maps the server's
replies and EMAIL_SMTP_CONNECTIONS messages are in flight. A tenant cannot add it (not in EMAIL_KINDS)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import get_connection

from integrations.email_providers.esp import AnymailKind
from integrations.ratelimit import RateLimit


def is_http_backend(backend: str) -> bool:
    """True for an email backend that sends each message as one HTTP request (django-anymail's ESPs)."""
    return backend.startswith("anymail.backends.") and not backend.startswith("anymail.backends.test")


class PlatformServer(AnymailKind):
    key = "platform"
    label = "The email provider"

    @property
    def sends_over_http(self) -> bool:  # type: ignore[override]
        return is_http_backend(settings.EMAIL_BACKEND)

    def open_backend(self, provider=None) -> Any:
        return get_connection(fail_silently=False)


PLATFORM = PlatformServer()


def platform_rate_limit() -> RateLimit | None:
    """The platform server's limit (EMAIL_RATE_PER_SECOND, bursts of EMAIL_RATE_BURST, default one
    second's worth), one bucket for every tenant that sends through it; None when unset (0)."""
    rate = float(settings.EMAIL_RATE_PER_SECOND or 0)
    if rate <= 0:
        return None
    return RateLimit("platform:email", rate, int(settings.EMAIL_RATE_BURST or max(1, round(rate))))
