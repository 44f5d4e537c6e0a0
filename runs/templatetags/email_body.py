"""`{% email_body_url html %}`: the URL an iframe shows an email's HTML from (runs/email_body.py)."""

from __future__ import annotations

from django import template

from runs.email_body import email_body_url as store

register = template.Library()


@register.simple_tag(takes_context=True)
def email_body_url(context, html: str) -> str:
    return store(context["request"].tenant.pk, html)
