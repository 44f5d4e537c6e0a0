"""Topics a tenant's email is about, who asked not to get them, who must never get mail, and layouts.

Addresses are kept normalised (`normalize_address`: stripped and lower-cased), so "Ada@Example.com" and
"ada@example.com" are one recipient: mailbox providers treat them as one in practice, and a suppression
that missed a capitalisation would send to a bouncing address again.
"""

from __future__ import annotations

from django.db import models

from tenants.models import TenantOwned

ADDRESS_MAX = 320  # RFC 5321: 64 for the local part, @, 255 for the domain


def normalize_address(address: str) -> str:
    return (address or "").strip().lower()


class Topic(TenantOwned):
    """What an email is about ("Product updates", "Tips & onboarding"); recipients unsubscribe per topic."""

    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    # Receipts, password resets, security alerts: never counted against a recipient's frequency budget.
    transactional = models.BooleanField(
        default=False,
        help_text="Transactional mail (receipts, password resets) is exempt from the frequency budget.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="topic_unique_name")]

    def __str__(self) -> str:
        return self.name


class Unsubscribe(TenantOwned):
    """A recipient's wish not to get one topic's email, or (topic empty) any email a step lets them
    unsubscribe from. Deleting the row subscribes them again."""

    class Source(models.TextChoices):
        ONE_CLICK = "one_click", "One-click (mail client)"
        PAGE = "page", "Unsubscribe page"
        API = "api", "API"

    address = models.CharField(max_length=ADDRESS_MAX)
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.PAGE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "address", "topic"],
                name="unsubscribe_unique_topic",
                condition=models.Q(topic__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["tenant", "address"],
                name="unsubscribe_unique_all",
                condition=models.Q(topic__isnull=True),
            ),
        ]
        indexes = [models.Index(fields=["tenant", "address"], name="unsubscribe_tenant_address")]

    def __str__(self) -> str:
        return f"{self.address} from {self.topic or 'everything'}"


class Suppression(TenantOwned):
    """An address the tenant never sends to on one channel (an email address, for email), on any topic,
    whatever the step says."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        REJECTED = "rejected", "Refused by the mail server"
        MANUAL = "manual", "Added by an admin"

    class Source(models.TextChoices):
        SMTP = "smtp", "SMTP answer"
        EVENT = "event", "Delivery event"
        ADMIN = "admin", "Admin"
        IMPORT = "import", "CSV import"
        API = "api", "API"

    channel = models.CharField(max_length=20, default="email")  # a name in integrations.channels.registry
    address = models.CharField(max_length=ADDRESS_MAX)
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.MANUAL)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ADMIN)
    detail = models.TextField(blank=True)  # the provider's words, or an admin's note
    # The id of the message that caused it (a runs.Delivery: bounce, complaint, refusal). Not a foreign key:
    # runs sits above consent. Pruning a run clears it (runs/retention.py); the suppression stays.
    delivery_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "address"], name="suppression_unique_address"
            )
        ]
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="suppression_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"


class EmailLayout(TenantOwned):
    """HTML around a step's email body: `{% block content %}{% endblock %}` marks where the body goes.

    Rendered in the same sandbox, with the same caps, as step templates (integrations/templating.py).
    At most one layout per tenant is the default (used by steps that choose none).
    """

    name = models.CharField(max_length=100)
    html = models.TextField()
    is_default = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="layout_unique_name"),
            models.UniqueConstraint(
                fields=["tenant"], name="layout_one_default", condition=models.Q(is_default=True)
            ),
        ]

    def __str__(self) -> str:
        return self.name
