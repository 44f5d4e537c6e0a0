"""A provider page's "test send": one message through a tenant's provider now, and its answer in words.

The channel of the provider says what the test asks for (its recipient field: an email address, a phone
number; and any other field, like email's From sender) and which message it sends
(`Channel.test_message`); the provider's kind sends it the way a step would.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms

from integrations.channels.base import Channel, ChannelError
from integrations.channels.registry import CHANNELS

logger = logging.getLogger(__name__)


def channel_of(provider: Any) -> Channel:
    return CHANNELS[provider.channel]()


class TestSendForm(forms.Form):
    """The channel's extra fields, then its recipient field as `to`."""

    __test__ = False  # not a pytest test class

    def __init__(self, provider: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channel = channel_of(provider)
        self.fields.update(channel.test_extra_fields(provider))
        self.fields["to"] = channel.test_recipient_field()


def send_test(provider: Any, data: dict[str, Any]) -> tuple[bool, str]:
    """(accepted?, the provider's answer in words). Never raises: a broken provider is what it reports."""
    channel = channel_of(provider)
    try:
        message = channel.test_message(provider, data)
        provider_id = channel.send(message)
    except ChannelError as exc:
        retry = "a temporary problem; sending would be retried" if not exc.permanent else "not retried"
        return False, f"Refused ({retry}): {exc.message}"
    except Exception as exc:  # a provider library's surprise must still be an answer on the page
        logger.exception("Test send through provider %s", provider.pk)
        return False, f"Failed with an unexpected error: {type(exc).__name__}: {exc}"
    finally:
        channel.close()
    return (
        True,
        f"Accepted by {provider.kind_module.label}; its message id is {provider_id or '(none given)'}.",
    )
