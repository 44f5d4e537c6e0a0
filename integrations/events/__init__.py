"""Outbound event webhooks' settings: Rowbell POSTs a signed JSON event to a tenant's endpoints when a run
finishes or a provider reports on a message (writing and sending them: runs/events/).

- forms.py: the endpoint form of the settings page (runs/events/views.py, which also sends test events).

This module is the registry of event types, and imports nothing, so that models can use it for choices.
"""

# The events an endpoint can subscribe to: one per way a run finishes (runs.models.Run.FINISHED).
EVENT_TYPES = {
    "run.succeeded": "a run finished and no step failed",
    "run.partial": "a run finished with some paths failed and others reaching their end",
    "run.failed": "a run finished and no path reached its end",
    "run.cancelled": "someone cancelled a run",
    # What an email provider reported about a message after taking it (runs/tracking.py).
    "message.delivered": "a provider delivered an email to the recipient's server",
    "message.deferred": "a provider could not deliver an email yet and will try again",
    "message.bounced": "an email bounced",
    "message.complained": "a recipient marked an email as spam",
    "message.opened": "a recipient opened an email",
    "message.clicked": "a recipient clicked a link in an email",
    "message.rejected": "a provider refused to send an email",
}
# What the page's "Send a test event" sends, whatever the endpoint subscribes to.
PING = "ping"


def run_event_type(status: str) -> str:
    """The event of a run that finished with `status` (succeeded, partial, failed, cancelled)."""
    return f"run.{status}"
