"""The form that adds or edits an event endpoint."""

from __future__ import annotations

from django import forms
from django.core.validators import URLValidator

from integrations.events import EVENT_TYPES
from integrations.models import EventEndpoint
from integrations.outbound import check_url_at_save


class EventEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=2000,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        widget=forms.URLInput(
            attrs={"placeholder": "https://example.com/rowbell/events", "spellcheck": "false"}
        ),
        help_text="Rowbell POSTs each event here as JSON. Answer with any 2xx status within a few seconds.",
    )
    events = forms.MultipleChoiceField(
        label="Events to send",
        choices=list(EVENT_TYPES.items()),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )

    class Meta:
        model = EventEndpoint
        fields = ["url", "description", "events", "active"]
        help_texts = {
            "description": "What listens here, so that people know what it is for.",
            "active": "An inactive endpoint receives nothing. Rowbell turns it off when it answers 410 Gone.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            del self.fields["active"]  # a new endpoint starts active

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        problem = check_url_at_save(url)  # best effort; each delivery is checked again when it is sent
        if problem:
            raise forms.ValidationError(problem)
        return url
