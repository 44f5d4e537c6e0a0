"""Send SMS: a templated text to a templated phone number, through one of the tenant's SMS providers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms

from consent.checks import skip_reasons
from integrations.failures import Failure
from integrations.models import Provider
from integrations.templating import render, render_header
from workflows.steps.context import StepContext
from workflows.steps.fields import TemplateField
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.send_kind import SendKind, rendered, template_context


@dataclass
class SmsSettings(StepSettings):
    provider: int
    to: str
    text: str


class SmsForm(StepForm):
    settings_class = SmsSettings

    provider = forms.IntegerField(label="SMS provider")
    to = TemplateField(label="To (a phone number)", required=True)
    text = TemplateField(label="Text", required=True)


class SendSms(SendKind):
    kind = "send_sms"
    label = "Send SMS"
    channel = "sms"
    form_class = SmsForm

    def provider(self, ctx: StepContext) -> Provider:
        cache = ctx.resources.cache
        key = ("sms-provider", ctx.step.config["provider"])
        if key not in cache:
            found = Provider.objects.filter(
                tenant_id=ctx.run.tenant_id, channel=self.channel, pk=ctx.step.config["provider"]
            ).first()
            if found is None:
                raise Failure("SMS: the provider chosen in this step no longer exists.", permanent=True)
            cache[key] = found
        return cache[key]

    def provider_id(self, ctx: StepContext) -> int | None:
        return self.provider(ctx).pk

    def messages_in_flight(self, ctx: StepContext) -> int:
        try:
            return self.provider(ctx).kind_module.messages_in_flight()
        except Failure:
            return 1  # each message then fails with the reason

    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        context = template_context(ctx, item)
        to = rendered("To", render_header, ctx.step.config["to"], context)
        text = rendered("Text", render, ctx.step.config["text"], context)
        return {"to": to, "text": text}, {"to": to, "text": text, "provider": self.provider(ctx)}

    def recipient(self, content: dict[str, Any]) -> str:
        return content["to"]

    def skip_reasons(
        self, ctx: StepContext, pairs: list[tuple[int, dict[str, Any]]]
    ) -> dict[int, tuple[str, str]]:
        """Numbers on the SMS suppression list (a gateway reported them undeliverable): one statement."""
        numbers: dict[int, str] = {}
        for key, item in pairs:
            try:
                numbers[key] = render_header(ctx.step.config["to"], template_context(ctx, item)).strip()
            except Exception:
                continue  # the send fails the message with the template's error
        reasons = skip_reasons(ctx.run.tenant_id, numbers.values(), None, False, channel=self.channel)
        return {key: (n, reasons[n.lower()]) for key, n in numbers.items() if n.lower() in reasons}
