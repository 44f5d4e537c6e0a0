"""A tenant's own SMTP server: Django's SMTP backend, connecting to the address integrations/outbound.py
checked (pinned; loopback and private addresses refused unless OUTBOUND_ALLOWED_NETWORKS allows them).
STARTTLS and implicit TLS verify the certificate against the host name as written."""

from __future__ import annotations

import re
import smtplib
from typing import Any

from django import forms
from django.conf import settings as django_settings
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

from integrations.channels.base import ChannelError
from integrations.email_providers.base import EmailProviderKind, ProviderForm, SecretField
from integrations.outbound import OutboundRefused, check_url_at_save, pinned_connection

TLS_MODES = (
    ("starttls", "STARTTLS (usually port 587)"),
    ("ssl", "TLS from the start (usually port 465)"),
    ("none", "None (only inside a trusted network)"),
)
HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$")


class _PinnedSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        return pinned_connection((host, port), timeout, self.source_address)


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        sock = pinned_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._host)  # type: ignore[attr-defined]  # SMTP.connect sets it


class CheckedSMTPBackend(SMTPBackend):
    """Django's SMTP backend whose connections go to checked, pinned addresses."""

    @property
    def connection_class(self):
        return _PinnedSMTPSSL if self.use_ssl else _PinnedSMTP


class SMTPForm(ProviderForm):
    host = forms.CharField(label="Host", max_length=500, help_text="e.g. smtp.example.com")
    port = forms.CharField(label="Port", max_length=10, initial="587")
    tls = forms.ChoiceField(label="TLS", choices=TLS_MODES, initial="starttls")
    username = forms.CharField(label="User name", required=False, max_length=500)
    password = SecretField(label="Password", required=False)

    def clean_port(self) -> int | str:
        """Stored as a number; what is not one is left for `SMTP.clean` to name."""
        value = self.cleaned_data["port"].strip()
        return int(value) if value.isdigit() else value


class SMTP(EmailProviderKind):
    key = "smtp"
    label = "SMTP server"
    form_class = SMTPForm

    def clean(self, settings: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
        errors: dict[str, str] = {}
        host = (settings.get("host") or "").strip()
        if not HOST.match(host):
            errors["host"] = "A host name or IP address, without a scheme or port."
        else:
            problem = _literal_refusal(host)
            if problem:
                errors["host"] = problem
        try:
            port = int(settings.get("port") or 0)
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            errors["port"] = "A port number between 1 and 65535."
        if settings.get("tls") not in dict(TLS_MODES):
            errors["tls"] = "Choose a TLS mode."
        return errors

    def open_backend(self, provider) -> Any:
        settings, secrets = provider.settings, provider.secret_values
        return CheckedSMTPBackend(
            host=settings["host"].strip().strip("[]"),
            port=int(settings["port"]),
            username=settings.get("username") or "",
            password=secrets.get("password") or "",
            use_tls=settings.get("tls") == "starttls",
            use_ssl=settings.get("tls") == "ssl",
            timeout=django_settings.EMAIL_TIMEOUT,
            fail_silently=False,
        )

    def map_error(self, exc: Exception) -> ChannelError | None:
        if isinstance(exc, OutboundRefused):
            return ChannelError(exc.message, permanent=True)
        return None  # the email channel maps SMTP replies (4xx transient, 5xx permanent) itself


def _literal_refusal(host: str) -> str | None:
    """The builder-style early warning (best effort, DNS within a short wait); connecting checks again."""
    return check_url_at_save(f"http://{host}/")
