"""Email providers: one module per kind (SMTP, and ESPs through django-anymail), each an `EmailProviderKind`.

A tenant's `integrations.models.Provider` row (channel "email") names its kind; the kind says what the
provider page asks for, builds the Django email backend that sends through it (every address it connects
to checked by integrations/outbound.py), maps the provider's errors to the engine's transient / permanent
split, and parses its tracking webhooks. The platform's own EMAIL_* server is a kind too
(integrations/email_providers/platform.py), used when a sender names no provider; a tenant cannot add it.
Adding a provider is adding a module here and a line in `EMAIL_KINDS` (the registry of every channel's
kinds is integrations/providers/registry.py).
"""

from __future__ import annotations

from integrations.email_providers.amazon_ses import AmazonSES
from integrations.email_providers.base import EmailProviderKind
from integrations.email_providers.brevo import Brevo
from integrations.email_providers.mailgun import Mailgun
from integrations.email_providers.postmark import Postmark
from integrations.email_providers.resend import Resend
from integrations.email_providers.sendgrid import SendGrid
from integrations.email_providers.smtp import SMTP

# In the order of the provider page's menu: your own server, then the ESPs by name.
EMAIL_KINDS: tuple[EmailProviderKind, ...] = (
    SMTP(),
    AmazonSES(),
    Brevo(),
    Mailgun(),
    Postmark(),
    Resend(),
    SendGrid(),
)

__all__ = ["EMAIL_KINDS", "EmailProviderKind"]
