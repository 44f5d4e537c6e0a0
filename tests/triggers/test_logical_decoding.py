"""Logical decoding capture (integrations/datasources/logical.py) against a PostgreSQL of the test's own,
started with wal_level=logical: pgoutput decoded into the rows the trigger capture would log, read without
being consumed, advanced only when asked."""

from __future__ import annotations

import psycopg
import pytest

from integrations.datasources import logical

pytestmark = pytest.mark.slow


@pytest.fixture
def customer(logical_server, request):
    name = f"logical_{abs(hash(request.node.name)) % 10**8}"
    url = logical_server.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, status text, amount numeric, tags text[], "
            "meta jsonb, at timestamptz DEFAULT '2026-12-07 09:00:00+00', paid boolean DEFAULT false)"
        )
        logical.ensure_capture(conn, 7, [("public", "orders")])
        yield conn
        logical.drop_capture(conn, 7)


def test_inserts_updates_and_deletes_arrive_as_the_trigger_capture_would_log_them(customer):
    customer.execute(
        "INSERT INTO orders (status, amount, tags, meta) VALUES ('new', 12.50, '{a,b}', '{\"x\": [1, 2]}')"
    )
    customer.execute("UPDATE orders SET status = 'paid', paid = true WHERE id = 1")
    customer.execute("DELETE FROM orders WHERE id = 1")
    batch = logical.read_changes(customer, 7, 100)
    logical.typed_rows(customer, batch.changes)
    insert, update, delete = batch.changes
    assert (insert.op, insert.schema, insert.table) == ("INSERT", "public", "orders")
    assert insert.new_row == {
        "id": 1,
        "status": "new",
        "amount": 12.5,
        "tags": ["a", "b"],
        "meta": {"x": [1, 2]},
        "at": "2026-12-07T09:00:00+00:00",
        "paid": False,
    }
    assert insert.old_row is None
    assert update.op == "UPDATE" and update.new_row["status"] == "paid" and update.new_row["paid"] is True
    assert update.old_row is None  # default replica identity: no old row unless the key changed
    assert delete.op == "DELETE" and delete.old_is_key and delete.old_row == {"id": 1}
    assert len({c.event_key for c in batch.changes}) == 3


def test_a_full_replica_identity_gives_the_old_row(customer):
    customer.execute("ALTER TABLE orders REPLICA IDENTITY FULL")
    customer.execute("INSERT INTO orders (status) VALUES ('new')")
    customer.execute("UPDATE orders SET status = 'paid'")
    customer.execute("DELETE FROM orders")
    changes = logical.read_changes(customer, 7, 100).changes
    logical.typed_rows(customer, changes)
    _, update, delete = changes
    assert update.old_row["status"] == "new" and not update.old_is_key
    assert delete.old_row["status"] == "paid" and delete.new_row == delete.old_row


def test_reading_consumes_nothing_until_the_slot_is_advanced(customer):
    customer.execute("INSERT INTO orders (status) SELECT 's' || g FROM generate_series(1, 5) g")
    first = logical.read_changes(customer, 7, 100)
    again = logical.read_changes(customer, 7, 100)
    assert [c.event_key for c in first.changes] == [c.event_key for c in again.changes]
    assert len(first.changes) == 5
    logical.advance(customer, 7, first.advance_to)
    customer.execute("INSERT INTO orders (status) VALUES ('later')")
    after = logical.read_changes(customer, 7, 100).changes
    assert [c.new_row["status"] for c in after] == ["later"]


def test_a_limit_stops_after_a_whole_transaction_and_advancing_to_it_keeps_the_rest(customer):
    for n in range(3):
        customer.execute("INSERT INTO orders (status) SELECT %s FROM generate_series(1, 4)", (f"tx{n}",))
    batch = logical.read_changes(customer, 7, 2)
    assert [c.new_row["status"] for c in batch.changes] == ["tx0"] * 4  # never half a transaction
    logical.advance(customer, 7, batch.advance_to)
    rest = logical.read_changes(customer, 7, 100).changes
    assert [c.new_row["status"] for c in rest] == ["tx1"] * 4 + ["tx2"] * 4


def test_an_idle_source_advances_past_other_databases_wal_after_a_heartbeat(customer, logical_server):
    other = logical_server.create_database("logical_busy_neighbour")
    with psycopg.connect(other, autocommit=True) as busy:
        busy.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 20000) g")
    before = logical.slot_health(customer, 7)
    assert logical.read_changes(customer, 7, 100).advance_to is None  # nothing of ours: nowhere safe to go
    logical.heartbeat(customer)
    batch = logical.read_changes(customer, 7, 100)
    assert batch.changes == [] and batch.advance_to is not None
    logical.advance(customer, 7, batch.advance_to)
    after = logical.slot_health(customer, 7)
    assert before.exists and before.lag_bytes > 100_000
    assert after.lag_bytes < 1_000


def test_a_table_dropped_before_decoding_keeps_its_values_as_text(customer):
    customer.execute("CREATE TABLE doomed (id int PRIMARY KEY, n int)")
    logical.ensure_capture(customer, 7, [("public", "orders"), ("public", "doomed")])
    customer.execute("INSERT INTO doomed VALUES (1, 42)")
    customer.execute("ALTER PUBLICATION rowbell_ds_7 SET TABLE orders")
    customer.execute("DROP TABLE doomed")
    changes = logical.read_changes(customer, 7, 100).changes
    logical.typed_rows(customer, changes)
    assert [(c.table, c.new_row) for c in changes] == [("doomed", {"id": "1", "n": "42"})]


def test_ensure_capture_is_idempotent_and_drop_frees_the_slot(customer):
    logical.ensure_capture(customer, 7, [("public", "orders")])
    assert logical.slot_health(customer, 7).exists
    logical.drop_capture(customer, 7)
    assert not logical.slot_health(customer, 7).exists
    logical.drop_capture(customer, 7)  # idempotent
    logical.ensure_capture(customer, 7, [("public", "orders")])
