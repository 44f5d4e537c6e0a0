"""Retention deletes expired runs with raw DELETEs: their messages' delivery events must go first, or the
foreign key stops the commit (so this test commits: transactional_db)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consent.models import Suppression
from runs.jobs import prune
from runs.models import Delivery, DeliveryEvent
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of
from tests.emailing.conftest import make_provider
from tests.emailing.test_tracking import post, postmark_bounce

pytestmark = pytest.mark.django_db(transaction=True)


def test_expired_runs_go_with_their_messages_delivery_events(onboarding, tenant_a, settings):
    settings.ACTIVITY_RETENTION_DAYS = 30
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "t"})
    old, recent = make_run(onboarding, "old", age=timedelta(days=40)), make_run(onboarding, "recent")
    for run, message_id in ((old, "old-id"), (recent, "recent-id")):
        delivery = add_delivery(add_execution(run, steps_of(onboarding)["Welcome"], "0"), "ada@example.com")
        Delivery.objects.filter(pk=delivery.pk).update(provider_id=message_id, sent_via=provider)
        assert post(provider, postmark_bounce(message_id)).status_code == 200
    assert DeliveryEvent.objects.count() == 2

    report = prune()

    assert report["runs"] == 1 and report["deliveries"] == 1
    assert list(DeliveryEvent.objects.values_list("delivery__provider_id", flat=True)) == ["recent-id"]
    # The hard bounce put the address on the suppression list (with the old message): it stays suppressed,
    # without the message it no longer has.
    entry = Suppression.objects.get(tenant=tenant_a, address="ada@example.com")
    assert (entry.reason, entry.delivery_id) == ("hard_bounce", None)
