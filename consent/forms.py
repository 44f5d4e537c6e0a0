"""Forms for the settings pages and checks the REST API shares (names, layouts, addresses)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from consent.models import ADDRESS_MAX, EmailLayout, Suppression, Topic, normalize_address
from integrations.templating import validate_layout


class TopicForm(forms.ModelForm):
    class Meta:
        model = Topic
        fields = ["name", "description", "transactional"]

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = Topic.objects.filter(tenant=self.tenant, name__iexact=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError("A topic with this name exists already.")
        return name


def layout_problem(html: str) -> str | None:
    problem = validate_layout(html)
    return str(problem) if problem else None


class LayoutForm(forms.ModelForm):
    class Meta:
        model = EmailLayout
        fields = ["name", "html", "is_default"]
        labels = {"html": "HTML", "is_default": "Default layout (for steps that choose none)"}
        widgets = {"html": forms.Textarea(attrs={"rows": 22, "class": "mono", "spellcheck": "false"})}

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = EmailLayout.objects.filter(tenant=self.tenant, name__iexact=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError("A layout with this name exists already.")
        return name

    def clean_html(self) -> str:
        html = self.cleaned_data["html"]
        problem = layout_problem(html)
        if problem:
            raise ValidationError(problem)
        return html


def clean_address(value: str) -> str:
    address = normalize_address(value)
    if len(address) > ADDRESS_MAX:
        raise ValidationError(f"An address has at most {ADDRESS_MAX} characters.")
    forms.EmailField().clean(address)
    return address


class SuppressionForm(forms.Form):
    address = forms.CharField(max_length=ADDRESS_MAX)
    reason = forms.ChoiceField(choices=Suppression.Reason.choices, initial=Suppression.Reason.MANUAL)
    detail = forms.CharField(required=False, max_length=2000, label="Note")

    def clean_address(self) -> str:
        return clean_address(self.cleaned_data["address"])


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file", help_text="address, reason, note: one address a line; reason optional."
    )

    MAX_BYTES = 20 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError("The file is larger than 20 MB; split it.")
        raw = upload.read()
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text; save it as CSV UTF-8.") from None
