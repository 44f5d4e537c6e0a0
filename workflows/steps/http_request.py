"""HTTP request: method, URL, headers and a JSON body as templates; the response JSON can become the item.

Every request carries `Idempotency-Key: rowbell-<32 hex digits>` (opaque: integrations/message_keys.py), the same on every retry, so a
receiver that honours it never acts twice. In the body, write values with `tojson`
(`{"name": {{ item.name|tojson }}}`) so that quotes in data cannot break the JSON. Header values are
stripped of CR/LF. Headers whose names look secret are masked in the stored Delivery content.

`resend_uncertain` (off by default): a request whose worker died between sending it and recording the
answer is `uncertain`. Email and Slack never resend those on their own; an HTTP step whose receiver
honours `Idempotency-Key` may opt in, and the engine then sends it again with the same key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms

from integrations.channels.base import Answer
from integrations.channels.http import HttpTransport
from integrations.failures import Failure
from integrations.json_input import JsonInputError, load_json
from integrations.outbound import check_url_at_save
from integrations.templating import render, render_header, validate_template
from workflows.steps.common import RETRY_NAMES, RetryForm, RetrySettings
from workflows.steps.context import StepContext
from workflows.steps.fields import ChoiceField, FlagField, JsonField, TemplateField, TextField
from workflows.steps.forms import StepForm
from workflows.steps.send_kind import SendKind, rendered, template_context
from workflows.steps.send_window import WINDOW_NAMES, SendWindowForm, SendWindowSettings
from workflows.steps.widgets import Select

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RESPONSE_CHOICES = (
    ("keep", "Keep the item"),
    ("replace", "Response JSON becomes the item"),
    ("merge", "Merge response JSON into the item"),
)
SECRET_HINTS = ("authorization", "token", "secret", "key", "cookie", "password")


@dataclass(kw_only=True)
class HttpSettings(SendWindowSettings, RetrySettings):
    omitted_when_empty = (*RETRY_NAMES, *WINDOW_NAMES, "resend_uncertain")

    method: str = "POST"
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    response: str = "keep"
    resend_uncertain: bool = False


class HttpForm(RetryForm, SendWindowForm, StepForm):
    settings_class = HttpSettings

    method = TextField(
        label="Method", initial="POST", required=False, widget=Select(choices=[(m, m) for m in METHODS])
    )
    url = TemplateField(label="URL", required=True)
    headers = JsonField(label="Headers", required=False, help_text='{"Authorization": "Bearer ..."}')
    body = TemplateField(label="JSON body", help_text='e.g. {"email": {{ item.email|tojson }}}')
    response = ChoiceField(
        label="Response",
        initial="keep",
        choices=RESPONSE_CHOICES,
        required=False,
        error_messages={"invalid_choice": "Choose keep, replace or merge."},
    )
    resend_uncertain = FlagField(
        label="Resend uncertain requests",
        help_text="Only if the receiver honours Idempotency-Key: a request a stopped worker may or may not have "
        "sent is then sent again automatically, with the same key, instead of waiting for a person.",
    )

    def clean_method(self) -> str:
        method = (self.cleaned_data["method"] or "POST").upper()
        if method not in METHODS:
            raise forms.ValidationError(f"Choose one of {', '.join(METHODS)}.")
        return method

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if not url.lstrip().startswith(("http://", "https://", "{{")):
            raise forms.ValidationError("The URL must start with http:// or https://.")
        refused = check_url_at_save(url)
        if refused:
            raise forms.ValidationError(refused)  # best effort: checked again on every request
        return str(url)

    def clean_headers(self) -> dict[str, str]:
        headers = self.cleaned_data["headers"] or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise forms.ValidationError(
                'Headers must be a JSON object of names to text, like {"X-Token": "abc"}.'
            )
        for name, value in headers.items():
            problem = validate_template(value)
            if problem:
                raise forms.ValidationError(
                    f"Header {name}: template error on line {problem.line}: {problem.message}"
                )
        return headers

    def clean_response(self) -> str:
        return self.cleaned_data["response"] or "keep"


class HttpRequest(SendKind[HttpTransport]):
    kind = "http_request"
    label = "HTTP request"
    description = "Calls a URL with a JSON body; the response can become the item."
    channel = "http"
    form_class = HttpForm

    def default_config(self) -> dict[str, Any]:
        return {"method": "POST", "url": "", "headers": {}, "body": "", "response": "keep"}

    def summary(self, config: dict[str, Any]) -> str:
        return f"{config.get('method') or 'POST'} {config.get('url') or '?'}"

    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], HttpTransport]:
        settings = self.step_settings(ctx)
        context = template_context(ctx, item)
        url = rendered("URL", render_header, settings.url, context)
        headers = {
            name: rendered(f"Header {name}", render_header, value, context)
            for name, value in (settings.headers or {}).items()
        }
        body = rendered("JSON body", render, settings.body, context) if settings.body else None
        if body is not None:
            try:
                json.loads(body)
            except ValueError as exc:
                raise Failure(
                    f"JSON body: the rendered body is not JSON ({exc}). Use |tojson for values.",
                    permanent=True,
                ) from exc
        transport: HttpTransport = {"method": settings.method, "url": url, "headers": headers, "body": body}
        shown = {name: ("••••••••" if _looks_secret(name) else value) for name, value in headers.items()}
        return {**transport, "headers": shown}, transport

    def resends_uncertain(self, config: dict[str, Any]) -> bool:
        return bool(self.settings(config).resend_uncertain)

    def recipient(self, content: dict[str, Any]) -> str:
        return str(content["url"])[:500]

    def result_items(
        self, ctx: StepContext, item: dict[str, Any], content: dict[str, Any], answer: Answer | None
    ) -> list[dict[str, Any]]:
        mode = self.step_settings(ctx).response or "keep"
        last_response = answer.last_response if answer is not None else None
        if mode == "keep" or last_response is None:
            return [item]
        status, _headers, text = last_response
        try:
            data = load_json(text)
        except JsonInputError as exc:
            # A NUL or 100,000 levels would fail the children's insert (or recurse): say why here.
            raise Failure(
                f"The response (HTTP {status}) cannot become the item: {exc}", permanent=True
            ) from None
        except ValueError:
            raise Failure(
                f"The response (HTTP {status}) is not JSON, so it cannot become the item.",
                permanent=True,
            ) from None
        if not isinstance(data, dict):
            data = {"response": data}
        return [data] if mode == "replace" else [{**item, **data}]


def _looks_secret(name: str) -> bool:
    return any(hint in name.lower() for hint in SECRET_HINTS)
