"""HTTP request: method, URL, headers and a JSON body as templates; the response JSON can become the item.

Every request carries `Idempotency-Key: rowbell-exec-<execution id>`, the same on every retry, so a
receiver that honours it never acts twice. In the body, write values with `tojson`
(`{"name": {{ item.name|tojson }}}`) so that quotes in data cannot break the JSON. Header values are
stripped of CR/LF. Headers whose names look secret are masked in the stored Delivery content.

`resend_uncertain` (off by default): a request whose worker died between sending it and recording the
answer is `uncertain`. Email and Slack never resend those on their own; an HTTP step whose receiver
honours `Idempotency-Key` may opt in, and the engine then sends it again with the same key.
"""

from __future__ import annotations

import json
from typing import Any

from integrations.channels.base import Answer
from integrations.failures import Failure
from integrations.json_input import JsonInputError, load_json
from integrations.outbound import check_url_at_save
from integrations.templating import render, render_header, validate_template
from workflows.steps.base import ConfigError, Field
from workflows.steps.common import RETRY_FIELDS, clean_retry, clean_template
from workflows.steps.context import StepContext
from workflows.steps.send_kind import SendKind, rendered, template_context

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RESPONSE_CHOICES = (
    ("keep", "Keep the item"),
    ("replace", "Response JSON becomes the item"),
    ("merge", "Merge response JSON into the item"),
)
SECRET_HINTS = ("authorization", "token", "secret", "key", "cookie", "password")


class HttpRequest(SendKind):
    kind = "http_request"
    label = "HTTP request"
    description = "Calls a URL with a JSON body; the response can become the item."
    channel = "http"
    fields = (
        Field("method", "Method", widget="select", choices=tuple((m, m) for m in METHODS), default="POST"),
        Field("url", "URL", widget="template", required=True),
        Field("headers", "Headers", widget="json", help='{"Authorization": "Bearer ..."}'),
        Field("body", "JSON body", widget="template", help='e.g. {"email": {{ item.email|tojson }}}'),
        Field("response", "Response", widget="select", choices=RESPONSE_CHOICES, default="keep"),
        Field(
            "resend_uncertain",
            "Resend uncertain requests",
            widget="checkbox",
            help="Only if the receiver honours Idempotency-Key: a request a stopped worker may or may not have "
            "sent is then sent again automatically, with the same key, instead of waiting for a person.",
        ),
        *RETRY_FIELDS,
    )

    def default_config(self) -> dict[str, Any]:
        return {"method": "POST", "url": "", "headers": {}, "body": "", "response": "keep"}

    def summary(self, config: dict[str, Any]) -> str:
        return f"{config.get('method') or 'POST'} {config.get('url') or '?'}"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        method = str(config.get("method") or "POST").upper()
        if method not in METHODS:
            errors["method"] = f"Choose one of {', '.join(METHODS)}."
        cleaned["method"] = method
        clean_template(config, "url", errors, cleaned, required=True)
        url = cleaned.get("url", "")
        if url and not url.lstrip().startswith(("http://", "https://", "{{")):
            errors["url"] = "The URL must start with http:// or https://."
        elif url and (refused := check_url_at_save(url)):
            errors["url"] = refused  # best effort: the address is checked again on every request
        headers = config.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            errors["headers"] = 'Headers must be a JSON object of names to text, like {"X-Token": "abc"}.'
        else:
            for name, value in headers.items():
                problem = validate_template(value)
                if problem:
                    errors["headers"] = (
                        f"Header {name}: template error on line {problem.line}: {problem.message}"
                    )
            cleaned["headers"] = headers
        clean_template(config, "body", errors, cleaned, required=False)
        response = config.get("response", "keep")
        if response not in dict(RESPONSE_CHOICES):
            errors["response"] = "Choose keep, replace or merge."
        cleaned["response"] = response
        resend = config.get("resend_uncertain", False)
        if resend in ("", None):
            resend = False
        if not isinstance(resend, bool):
            errors["resend_uncertain"] = "Resend uncertain requests must be true or false."
        elif resend:
            cleaned["resend_uncertain"] = True
        clean_retry(config, errors, cleaned)
        if errors:
            raise ConfigError(errors)
        return cleaned

    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        config = ctx.step.config
        context = template_context(ctx, item)
        url = rendered("URL", render_header, config["url"], context)
        headers = {
            name: rendered(f"Header {name}", render_header, value, context)
            for name, value in (config.get("headers") or {}).items()
        }
        body = (
            rendered("JSON body", render, config.get("body") or "", context) if config.get("body") else None
        )
        if body is not None:
            try:
                json.loads(body)
            except ValueError as exc:
                raise Failure(
                    f"JSON body: the rendered body is not JSON ({exc}). Use |tojson for values.",
                    permanent=True,
                ) from exc
        transport = {"method": config.get("method", "POST"), "url": url, "headers": headers, "body": body}
        shown = {name: ("••••••••" if _looks_secret(name) else value) for name, value in headers.items()}
        return {**transport, "headers": shown}, transport

    def resends_uncertain(self, config: dict[str, Any]) -> bool:
        return bool(config.get("resend_uncertain"))

    def recipient(self, content: dict[str, Any]) -> str:
        return content["url"][:500]

    def result_items(self, ctx: StepContext, item, content, answer: Answer | None) -> list[dict[str, Any]]:
        mode = ctx.step.config.get("response") or "keep"
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
