"""Forms of the email settings pages: a provider (its fields come from its kind), a sender, a test send."""

from __future__ import annotations

from typing import Any

from django import forms

from integrations.crypto import mask
from integrations.models import Provider, Sender
from integrations.providers.base import ProviderKind


class ProviderForm(forms.Form):
    """Name plus the kind's fields. Secret fields are never shown back: left empty, the saved value stays."""

    name = forms.CharField(max_length=100, help_text="How senders pick it, e.g. “Postmark production”.")

    def __init__(self, kind: ProviderKind, tenant, *args, provider: Provider | None = None, **kwargs):
        self.kind, self.tenant, self.provider = kind, tenant, provider
        initial = {}
        if provider is not None:
            initial = {"name": provider.name, **provider.settings}
        super().__init__(*args, initial=initial, **kwargs)
        saved = provider.secret_values if provider is not None else {}
        for spec in kind.fields:
            self.fields[spec.name] = self._field(spec, saved.get(spec.name, ""))
            if spec.default and spec.name not in self.initial:
                self.initial[spec.name] = spec.default
        self._limit_fields(kind, provider)

    def _limit_fields(self, kind: ProviderKind, provider: Provider | None) -> None:
        """The provider's rate limit (one token bucket for every worker, integrations/ratelimit.py)."""
        default = kind.default_rate_per_second
        self.fields["rate_per_second"] = forms.FloatField(
            label="Limit (recipients a second)",
            required=False,
            min_value=0.01,
            max_value=100000,
            help_text=(
                "What the provider accepts; To, CC and BCC each count one. "
                + (f"Empty: {default:g}/s, {kind.label}'s default." if default else "Empty: no limit.")
            ),
        )
        self.fields["rate_burst"] = forms.IntegerField(
            label="Burst",
            required=False,
            min_value=1,
            max_value=1000000,
            help_text="How many may leave at once after a quiet spell. Empty: one second's worth.",
        )
        if provider is not None:
            self.initial.update(
                {"rate_per_second": provider.rate_per_second, "rate_burst": provider.rate_burst}
            )

    @staticmethod
    def _field(spec, saved: str) -> forms.Field:
        if spec.secret:
            help_text = spec.help
            if saved:
                help_text = f"Saved: {mask(saved)}. Leave empty to keep it. {spec.help}".strip()
            return forms.CharField(
                label=spec.label,
                required=spec.required and not saved,
                help_text=help_text,
                strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            )
        if spec.choices:
            return forms.ChoiceField(label=spec.label, choices=spec.choices, help_text=spec.help)
        return forms.CharField(
            label=spec.label, required=spec.required, help_text=spec.help, max_length=500, strip=True
        )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        others = Provider.objects.for_tenant(self.tenant).filter(name=name)
        if self.provider is not None:
            others = others.exclude(pk=self.provider.pk)
        if others.exists():
            raise forms.ValidationError("Another provider has this name.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        settings, secrets = self.values()
        for field, message in self.kind.clean(settings, secrets).items():
            self.add_error(field if field in self.fields else None, message)
        return data

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        settings: dict[str, Any] = {}
        secrets = dict(self.provider.secret_values) if self.provider is not None else {}
        for spec in self.kind.fields:
            value = self.cleaned_data.get(spec.name, "")
            if spec.secret:
                if value:
                    secrets[spec.name] = value
            elif spec.integer and value not in ("", None):
                try:
                    settings[spec.name] = int(value)
                except ValueError:
                    settings[spec.name] = value  # kind.clean names it
            else:
                settings[spec.name] = value
        return settings, secrets

    def save(self) -> Provider:
        provider = self.provider or Provider(tenant=self.tenant, kind=self.kind.key)
        provider.name = self.cleaned_data["name"]
        provider.settings, provider.secret_values = self.values()
        provider.rate_per_second = self.cleaned_data.get("rate_per_second")
        provider.rate_burst = self.cleaned_data.get("rate_burst")
        provider.save()
        return provider


class SenderForm(forms.ModelForm):
    """One name for a sender: the name its email is from ("Acme Support"), which is also how email steps
    list it (`Sender.name`, made unique with the address when two senders share a name)."""

    class Meta:
        model = Sender
        fields = ["from_name", "from_address", "reply_to", "provider", "is_default"]
        labels = {"from_name": "Name"}
        help_texts = {
            "from_name": "Who the email is from, e.g. “Acme Support”; email steps list the sender by it.",
            "from_address": "Your provider must allow this address (a verified sender or domain).",
            "reply_to": "Where replies go, when not the From address.",
        }

    def __init__(self, tenant, *args, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)
        self.fields["provider"].queryset = (
            Provider.objects.for_tenant(tenant).filter(channel="email").order_by("name")
        )
        self.fields["provider"].empty_label = "Rowbell's mail server"

    def clean_from_name(self) -> str:
        return _one_line(self.cleaned_data["from_name"]).strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name, address = cleaned.get("from_name", ""), cleaned.get("from_address", "")
        if address:
            others = Sender.objects.for_tenant(self.tenant).exclude(pk=self.instance.pk)
            choices = [name, f"{name} <{address}>"] if name else [address]
            free = [c for c in choices if len(c) <= 100 and not others.filter(name=c).exists()]
            if not free:
                self.add_error("from_address", "Another sender has this name and address.")
            else:
                self.instance.name = free[0]
        return cleaned


def _one_line(value: str) -> str:
    """A header value: CR and LF never survive (a header injection otherwise)."""
    if "\r" in value or "\n" in value:
        raise forms.ValidationError("One line only.")
    return value.strip()


class TestSendForm(forms.Form):
    sender = forms.ModelChoiceField(queryset=Sender.objects.none(), required=False, label="From")
    to = forms.EmailField(label="To", help_text="Where the test email goes.")

    def __init__(self, provider: Provider, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sender"].queryset = provider.senders.order_by("name")
        self.fields["sender"].empty_label = "Rowbell's default From address"
