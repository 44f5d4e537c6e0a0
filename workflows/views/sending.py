"""The workspace's sending defaults (`/settings/sending/`): its time zone and the send window of every
send step that does not set its own (workflows/steps/send_window.py). Every member reads, admins change."""

from __future__ import annotations

from zoneinfo import available_timezones

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render

from integrations import send_windows
from tenants.audit import record_for
from tenants.permissions import admins_only
from tenants.request import MemberRequest

ZONES = sorted(available_timezones())


class SendingDefaultsForm(forms.Form):
    time_zone = forms.CharField(
        label="Time zone",
        max_length=64,
        help_text="Used when a message's data names no time zone, or one that does not exist, e.g. Europe/Berlin.",
    )
    send_window = forms.CharField(
        label="Default send window",
        max_length=500,
        required=False,
        help_text="When messages may go out, e.g. “mon-fri 09:00-18:00” or “not daily 22:00-06:00”. "
        "Empty: any time. A step may set its own, or “always”.",
    )

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"].strip()
        if send_windows.zone(name) is None:
            raise forms.ValidationError(f"“{name}” is not a time zone; use a name like Europe/Berlin or UTC.")
        return name

    def clean_send_window(self) -> str:
        spec = " ".join(self.cleaned_data["send_window"].split())
        try:
            send_windows.parse(spec)
        except send_windows.WindowError as exc:
            raise forms.ValidationError(str(exc)) from None
        return spec


@login_required
@admins_only("change the sending defaults", writes_only=True)
def sending_defaults(request: MemberRequest) -> HttpResponse:
    tenant = request.tenant
    initial = {"time_zone": tenant.time_zone, "send_window": tenant.send_window}
    form = SendingDefaultsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        old = dict(initial)
        tenant.time_zone = form.cleaned_data["time_zone"]
        tenant.send_window = form.cleaned_data["send_window"]
        tenant.save(update_fields=["time_zone", "send_window"])
        record_for(request, "tenant.sending_defaults_changed", tenant, old=old, new=form.cleaned_data)
        messages.success(request, "Saved: new messages follow these defaults; held ones keep their time.")
        return redirect("workflows:sending_defaults")
    return render(request, "workflows/sending_defaults.html", {"form": form, "zones": ZONES})
