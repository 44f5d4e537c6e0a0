"""Send windows of a send step (email, Slack, HTTP): the settings every send kind shares, and whether
a message must wait for its window.

A step's `send_window` is a weekly spec (integrations/send_windows.py); empty uses the tenant's default
(Tenant.send_window, itself empty for "any time"), and `always` sends at any time whatever the tenant's
default. `send_window_zone` is a template for the recipient's zone, e.g. `{{ item.timezone }}`; empty,
unreadable or not a zone, the tenant's zone (Tenant.time_zone) is used and the hold says so. `urgent`
bypasses the window.

A message outside its window is held: its execution is made due at the next opening, plus a fixed share
of the first SEND_WINDOW_SPREAD_SECONDS taken from its identity (run, step, item), so nothing polls and
09:00 is not a spike. Consent and suppression are checked when it finally sends (SendKind.skip_reasons runs
per batch at send time), so a recipient who unsubscribed meanwhile is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from django import forms
from django.conf import settings

from integrations import send_windows
from integrations.templating import TemplateError, render
from tenants.models import Tenant
from workflows.steps.common import RETRY_NAMES
from workflows.steps.fields import FlagField, TemplateField, TextField
from workflows.steps.forms import StepSettings

WINDOW_NAMES = ("send_window", "send_window_zone", "urgent")
ALWAYS = "always"


class SendWindowForm(forms.Form):
    """The window fields of a send step; folded in the panel with the retry settings."""

    window_fields: ClassVar[tuple[str, ...]] = WINDOW_NAMES

    send_window = TextField(
        label="Send window",
        required=False,
        help_text="When messages may go out, in the recipient's zone, e.g. “mon-fri 09:00-18:00” or "
        "“not daily 22:00-06:00”. Empty: the workspace default; “always”: any time.",
    )
    send_window_zone = TemplateField(
        label="Recipient's time zone",
        help_text="e.g. {{ item.timezone }} (a name like Europe/Berlin). Empty or unknown: the workspace's zone.",
    )
    urgent = FlagField(label="Urgent", help_text="Send at once, outside the send window too.")

    def clean_send_window(self) -> str:
        spec = " ".join((self.cleaned_data.get("send_window") or "").split())
        if spec.lower() == ALWAYS:
            return ALWAYS
        try:
            send_windows.parse(spec)
        except send_windows.WindowError as exc:
            raise forms.ValidationError(str(exc)) from None
        return spec


@dataclass(kw_only=True)
class SendWindowSettings(StepSettings):
    omitted_when_empty: ClassVar[tuple[str, ...]] = (*RETRY_NAMES, *WINDOW_NAMES)

    send_window: str = ""
    send_window_zone: str = ""
    urgent: bool = False


@dataclass(frozen=True)
class Hold:
    until: datetime  # when the message is due (the opening plus its share of the spread)
    opens: datetime  # when the window opens
    zone: str  # the zone the window was read in
    zone_note: str  # "" or why the tenant's zone was used ("zone unknown, used Europe/Berlin")

    def as_output(self) -> dict[str, Any]:
        return {
            "held_for_window": {
                "until": self.until.isoformat(),
                "opens": self.opens.isoformat(),
                "zone": self.zone,
                "zone_note": self.zone_note,
            }
        }


def identity(run_id: int, step_id: int, item_key: str) -> str:
    """What fixes a message's share of the spread: its execution's unique key (run, step, item), known
    before the row (and its id) exists and the same at every re-check."""
    return f"{run_id}:{step_id}:{item_key}"


def hold_for(
    config: dict[str, Any], item: dict[str, Any], tenant: Tenant, now: datetime, identity: str
) -> Hold | None:
    """None when the message may go now; else how long it is held for its window."""
    if config.get("urgent") is True:
        return None
    spec = config.get("send_window") or tenant.send_window or ""
    if not isinstance(spec, str) or spec.strip().lower() == ALWAYS:
        return None
    try:
        window = send_windows.parse(spec)
    except send_windows.WindowError:
        return None  # refused on save; a stored one that no longer parses must not hold messages forever
    if window.always:
        return None
    tz_name, note = recipient_zone(config, item, tenant)
    tz = send_windows.zone(tz_name) or send_windows.zone("UTC")
    assert tz is not None
    opening = send_windows.next_opening(window, tz, now)
    if opening is None:
        return None
    until = send_windows.spread(opening, identity, settings.SEND_WINDOW_SPREAD_SECONDS)
    return Hold(until=until, opens=opening.at, zone=tz_name, zone_note=note)


def recipient_zone(config: dict[str, Any], item: dict[str, Any], tenant: Tenant) -> tuple[str, str]:
    """(the zone's name, "" or why the tenant's was used)."""
    fallback = tenant.time_zone if send_windows.zone(tenant.time_zone) else "UTC"
    template = config.get("send_window_zone") or ""
    if not template:
        return fallback, ""
    try:
        name = render(template, {"item": item}).strip()
    except TemplateError:
        name = ""
    if not name:
        return fallback, f"zone unknown, used {fallback}"
    if send_windows.zone(name) is None:
        return fallback, f"zone “{name[:64]}” is not a time zone, used {fallback}"
    return name, ""
