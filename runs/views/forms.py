"""Filter forms of the activity log. An invalid field is reported and left out; the rest still filter."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.utils import timezone

from runs.models import Delivery, Run
from workflows.models import Workflow
from workflows.steps import STEP_KINDS
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

    field_order = ["workflow", "status", "date_from", "date_to", "q"]


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
