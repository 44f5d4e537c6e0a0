"""`{% digest_window_notes workflow draft %}`: the publish dialog's words on open digests (runs/digest_publish.py)."""

from __future__ import annotations

from django import template

from runs.digest_publish import digest_window_notes as notes_for

register = template.Library()


@register.inclusion_tag("runs/_digest_window_notes.html")
def digest_window_notes(workflow, draft) -> dict:
    return {"notes": notes_for(workflow, draft)}
