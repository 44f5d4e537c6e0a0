"""The listener's lag for /metrics: the age of the oldest row waiting in a data source's event log."""

from __future__ import annotations

import pytest

from runs.engine import metrics
from runs.listener import Listener
from tests.triggers.conftest import customer_execute, db_trigger_workflow

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_listener_publishes_the_age_of_the_oldest_waiting_row(datasource, customer_db, redis_conn):
    db_trigger_workflow(datasource)
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@x.org'), ('b@x.org')")
    # The rows waited: the listener was down for a minute.
    customer_execute(customer_db, "UPDATE rowbell.event_log SET created_at = now() - interval '60 seconds'")
    listener = Listener()
    try:
        assert listener.run_once() == 2
    finally:
        listener.close()
    lag = metrics.read_listener_lags()[datasource.pk]
    assert 59 <= lag < 120
    assert customer_execute(customer_db, "SELECT count(*) FROM rowbell.event_log") == [(0,)]
