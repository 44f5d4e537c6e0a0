"""The credentials form every provider kind declares (`ProviderKind.form_class`): a Django form with the
provider's name and the kind's own fields.

A kind module subclasses `ProviderForm` and declares its fields as Django fields; a `SecretField` is a
secret (an API key, a password): stored encrypted with the provider's other secrets, never rendered back
(its help says what is saved, masked), and left empty it keeps the saved value. Every other field is a
setting, stored as cleaned (`Provider.settings`). `clean()` also asks the kind (`ProviderKind.clean`) for
the checks that need its knowledge (an outbound address, a region).

The form does not import the Provider model (the model imports the registry, which imports the kinds and
so this module): the page gives it `others`, the tenant's other providers, to keep names unique.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms

from integrations.crypto import mask

if TYPE_CHECKING:
    from integrations.providers.base import ProviderKind


class SecretField(forms.CharField):
    """A credential: a password input that never shows the saved value; empty keeps it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strip", True)
        kwargs.setdefault(
            "widget", forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        )
        super().__init__(**kwargs)


LIMIT_FIELDS = ("rate_per_second", "rate_burst")  # columns of Provider, not kind settings


class ProviderForm(forms.Form):
    """Name plus the kind's fields (declared by the subclass in the kind's module)."""

    name = forms.CharField(max_length=100)

    def __init__(
        self,
        kind: ProviderKind,
        *args: Any,
        provider: Any = None,
        others: Any = None,
        **kwargs: Any,
    ) -> None:
        """`provider`: the saved Provider when editing; `others`: a queryset of the tenant's other
        providers (names must differ)."""
        self.kind, self.provider, self.others = kind, provider, others
        initial = {"name": provider.name, **provider.settings} if provider is not None else {}
        kwargs["initial"] = {**initial, **(kwargs.get("initial") or {})}
        super().__init__(*args, **kwargs)
        self.fields["name"].help_text = f"How steps and senders pick it, e.g. “{kind.label} production”."
        self._add_limit_fields(kind, provider)
        saved = provider.secret_values if provider is not None else {}
        for name in self.secret_names:
            field = self.fields[name]
            if saved.get(name):
                field.required = False
                field.help_text = (
                    f"Saved: {mask(saved[name])}. Leave empty to keep it. {field.help_text}".strip()
                )

    def _add_limit_fields(self, kind: ProviderKind, provider: Any) -> None:
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

    @property
    def secret_names(self) -> list[str]:
        return [name for name, field in self.fields.items() if isinstance(field, SecretField)]

    @property
    def setting_names(self) -> list[str]:
        return [
            name
            for name, field in self.fields.items()
            if name not in ("name", *LIMIT_FIELDS) and not isinstance(field, SecretField)
        ]

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if self.others is not None and self.others.filter(name=name).exists():
            raise forms.ValidationError("Another provider has this name.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        settings, secrets = self.values()
        for field, message in self.kind.clean(settings, secrets).items():
            self.add_error(field if field in self.fields else None, message)
        return data

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(settings, secrets) as they will be stored; a secret left empty keeps its saved value."""
        settings = {name: self.cleaned_data.get(name, "") for name in self.setting_names}
        secrets = dict(self.provider.secret_values) if self.provider is not None else {}
        for name in self.secret_names:
            if self.cleaned_data.get(name):
                secrets[name] = self.cleaned_data[name]
        return settings, secrets

    def changed_settings(self) -> list[str]:
        """What the audit log may name: changed settings, never a secret."""
        return sorted(set(self.changed_data) - set(self.secret_names))

    def replaced_secrets(self) -> list[str]:
        return sorted(name for name in self.secret_names if self.cleaned_data.get(name))

    def apply(self, provider: Any) -> Any:
        """Put the cleaned name, settings and secrets on `provider` (not saved)."""
        provider.name = self.cleaned_data["name"]
        provider.settings, provider.secret_values = self.values()
        for name in LIMIT_FIELDS:
            setattr(provider, name, self.cleaned_data.get(name))
        return provider
