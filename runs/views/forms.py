"""Filter forms of the activity log. An invalid field is reported and left out; the rest still filter."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.utils import timezone

from runs.models import Delivery, Run
from workflows.models import Step, Workflow
from workflows.steps import STEP_KINDS
from workflows.steps.search_fields import SearchField, declared_search_fields
from workflows.steps.send_kind import SendKind

RETRYING = "retrying"


def day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class ActivityFilterForm(forms.Form):
    workflow = forms.ModelChoiceField(
        queryset=Workflow.objects.none(), required=False, empty_label="All workflows"
    )
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the tenant's own workflows: another tenant's id is "not one of the available choices".
        workflow_field = cast(forms.ModelChoiceField, self.fields["workflow"])
        workflow_field.queryset = Workflow.objects.for_tenant(tenant).order_by("name")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "“To” is before “From”: swap the dates.")
        return cleaned

    def valid_data(self) -> dict:
        """Cleaned values of the fields that are valid (after is_valid(); none for an unbound form)."""
        cleaned = getattr(self, "cleaned_data", {})
        return {name: value for name, value in cleaned.items() if value not in (None, "")}

    def date_range(self) -> tuple[datetime | None, datetime | None]:
        data = self.valid_data()
        start = day_start(data["date_from"]) if "date_from" in data else None
        end = day_start(data["date_to"] + timedelta(days=1)) if "date_to" in data else None
        return start, end


class RunFilterForm(ActivityFilterForm):
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any status"),
            *Run.Status.choices,
            (RETRYING, "Retrying (an execution waits to retry)"),
        ],
    )
    q = forms.CharField(
        required=False,
        max_length=500,
        label="Search",
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Whom (label start), event key, recipient"}),
    )

    field = forms.ChoiceField(required=False, label="Payload field", choices=[("", "Any field")])
    value = forms.CharField(
        required=False,
        max_length=10_000,
        label="equals",
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Exact value"}),
    )

    field_order = ["workflow", "status", "date_from", "date_to", "q", "field", "value"]

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, tenant=tenant, **kwargs)
        self.search_fields = searchable_fields(tenant)
        if not self.search_fields:  # no workflow declares one: nothing to choose, so no such filter
            del self.fields["field"], self.fields["value"]
            return
        cast(forms.ChoiceField, self.fields["field"]).choices = [
            ("", "Any field"),
            *((field_choice(field), field_label(field)) for field in self.search_fields),
        ]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("field") and not cleaned.get("value"):
            self.add_error("value", "Type the value the field must equal.")
        return cleaned

    def searched_field(self) -> tuple[SearchField, str] | None:
        """The declared field and the value typed for it, when both are valid."""
        data = self.valid_data()
        if not (data.get("field") and data.get("value")) or self.has_error("value"):
            return None
        chosen = {field_choice(field): field for field in self.search_fields}
        return chosen[data["field"]], data["value"]


HASHED_CHOICE = "hashed:"


def field_choice(field: SearchField) -> str:
    """A field's value in the form (and the page's URL): its path, marked when its values are hashed."""
    return HASHED_CHOICE + field.path if field.hashed else field.path


def field_label(field: SearchField) -> str:
    return f"{field.path} (hashed)" if field.hashed else field.path


def searchable_fields(tenant) -> list[SearchField]:
    """The fields the tenant's published workflows declare searchable (each once, by path), in one query."""
    published = (
        Workflow.objects.for_tenant(tenant).exclude(published_version=None).values("published_version")
    )
    triggers = Step.objects.for_tenant(tenant).filter(version__in=published, parent__isnull=True)
    found = {
        field
        for config in triggers.values_list("config", flat=True)
        for field in declared_search_fields(config)
    }
    return sorted(found, key=lambda field: (field.path, field.hashed))


def channel_choices() -> list[tuple[str, str]]:
    """Channels of the registered send steps (the registry, not a list kept here)."""

    kinds = [kind for kind in STEP_KINDS.values() if isinstance(kind, SendKind)]
    return sorted({(kind.channel, kind.label) for kind in kinds})


class MessageFilterForm(ActivityFilterForm):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Delivery.Status.choices])
    channel = forms.ChoiceField(required=False, choices=lambda: [("", "Any channel"), *channel_choices()])
    q = forms.CharField(
        required=False,
        max_length=500,
        label="Recipient",
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Exact recipient"}),
    )

    field_order = ["workflow", "status", "channel", "date_from", "date_to", "q"]
