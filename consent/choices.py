"""The builder's topic and layout pickers (workflows/forms/step_form.py draws them as selects)."""

from __future__ import annotations

from consent.models import EmailLayout, Topic


def consent_options(widget: str, tenant) -> list[tuple[str, str]]:
    if widget == "topic":
        return [
            (str(pk), name)
            for pk, name in Topic.objects.for_tenant(tenant).order_by("name").values_list("pk", "name")
        ]
    layouts = EmailLayout.objects.for_tenant(tenant).order_by("name").values_list("pk", "name", "is_default")
    return [("none", "No layout")] + [
        (str(pk), f"{name} (default)" if default else name) for pk, name, default in layouts
    ]
