"""The sender form of the email settings page (a provider's form is its kind's: integrations/providers/forms.py)."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from integrations.models import Provider, Sender


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
        provider = cast(forms.ModelChoiceField, self.fields["provider"])
        provider.queryset = Provider.objects.for_tenant(tenant).filter(channel="email").order_by("name")
        provider.empty_label = "Rowbell's mail server"

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
