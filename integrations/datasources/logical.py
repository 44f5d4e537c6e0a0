"""Logical decoding capture: a data source's row changes read from a replication slot, nothing on its tables.

Protocol: the SQL-level slot functions (`pg_logical_slot_peek_binary_changes`, then
`pg_replication_slot_advance`) with PostgreSQL's built-in `pgoutput` plugin, not the streaming replication
protocol. Peek-then-advance is what makes the capture exactly-once without any state of ours in the
customer's database: changes are read without being consumed, their runs are committed in Rowbell's
database (event keys `db:<source>:<commit LSN>:<n>` are unique per workflow, so reading a transaction twice
starts nothing twice), and only then is the slot moved past them. A listener killed in between reads the
same transactions again. The SQL functions also need no connection held open per source (the streaming
protocol needs a dedicated replication connection and a keepalive loop per source), so an idle source costs
one short query per poll. `pgoutput` ships with every PostgreSQL from 10 on, including the managed ones
(wal2json and friends are extensions a host may not offer).

Values arrive as text; `typed_rows` turns them into the same JSON the trigger capture writes (`to_jsonb` of
the row) by asking the customer's database to cast them with the table's own types, so a workflow sees one
item shape whichever mode captured it.

What the slot keeps: the WAL from its `restart_lsn` on. A slot that is not advanced fills the customer's
disk; `slot_health` reports how far behind it is, and the listener advances the slot past WAL that held
nothing for us (an idle database still moves on).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from integrations.datasources.connection import DataSourceUnavailable, connect_datasource, describe_error
from integrations.datasources.session import listener_transaction

PLUGIN = "pgoutput"
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
JSON_TYPES = {114, 3802}  # json, jsonb: their text is parsed here, not cast as a string


def slot_name(conn: psycopg.Connection, datasource_id: int) -> str:
    """Slot names are server-wide while publications are per database: the database's name is part of it,
    so sources of the same id in two databases of one server (two Rowbells, staging and production) do
    not share a slot."""
    database = hashlib.sha256(conn.info.dbname.encode()).hexdigest()[:8]
    return f"rowbell_ds_{int(datasource_id)}_{database}"


def publication_name(datasource_id: int) -> str:
    return f"rowbell_ds_{int(datasource_id)}"


def lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass
class Relation:
    schema: str
    table: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: list[tuple[str, int]]  # (name, type oid)
    key: set[str]  # the columns of its replica identity's key


@dataclass
class RowChange:
    """One row of a committed transaction, as the trigger capture's log would hold it."""

    op: str  # INSERT, UPDATE, DELETE
    schema: str
    table: str
    new_row: dict
    old_row: dict | None  # updates and deletes: the old row, or only its key (see `old_is_key`)
    commit_lsn: str
    position: int  # the change's place in its transaction (0, 1, ...)
    committed_at: datetime
    old_is_key: bool = False  # the table's replica identity gave only the key columns of the old row
    types: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def event_key(self) -> str:
        return f"{self.commit_lsn}:{self.position}"


@dataclass
class ChangeBatch:
    changes: list[RowChange]
    # Where the slot may be advanced once the changes' runs are committed: the end of the last whole
    # transaction read, or the WAL position the read covered when it found fewer changes than asked.
    advance_to: str | None
    oldest_commit_at: datetime | None = None


class PgOutputParser:
    """Decodes pgoutput protocol 1 messages (Begin, Relation, Insert, Update, Delete, Commit)."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self.changes: list[RowChange] = []
        self._pending: list[RowChange] = []
        self.last_commit_end: int | None = None
        self.oldest_commit_at: datetime | None = None
        self._commit_at = POSTGRES_EPOCH

    def feed(self, data: bytes) -> None:
        kind, body = chr(data[0]), memoryview(data)[1:]
        handler = {
            "B": self._begin,
            "R": self._relation,
            "I": self._insert,
            "U": self._update,
            "D": self._delete,
            "C": self._commit,
        }.get(kind)
        if handler is not None:  # Origin, Type, Truncate and Message carry nothing a trigger would see
            handler(body)

    def _begin(self, body: memoryview) -> None:
        _final_lsn, timestamp, _xid = struct.unpack_from("!QqI", body)
        self._commit_at = POSTGRES_EPOCH + timedelta(microseconds=timestamp)
        self._pending = []

    def _commit(self, body: memoryview) -> None:
        _flags, commit_lsn, end_lsn, _timestamp = struct.unpack_from("!BQQq", body)
        for change in self._pending:
            change.commit_lsn = int_to_lsn(commit_lsn)
        self.changes.extend(self._pending)
        if self._pending and self.oldest_commit_at is None:
            self.oldest_commit_at = self._commit_at
        self._pending = []
        self.last_commit_end = end_lsn

    def _relation(self, body: memoryview) -> None:
        (oid,) = struct.unpack_from("!I", body)
        offset = 4
        schema, offset = _string(body, offset)
        table, offset = _string(body, offset)
        identity = chr(body[offset])
        (count,) = struct.unpack_from("!H", body, offset + 1)
        offset += 3
        columns, key = [], set()
        for _ in range(count):
            flags = body[offset]
            name, offset = _string(body, offset + 1)
            type_oid, _typmod = struct.unpack_from("!Ii", body, offset)
            offset += 8
            columns.append((name, type_oid))
            if flags & 1:
                key.add(name)
        self.relations[oid] = Relation(schema, table, identity, columns, key)

    def _insert(self, body: memoryview) -> None:
        relation, offset = self._relation_of(body)
        new_row, _ = _tuple(body, offset + 1, relation)  # 'N'
        self._add("INSERT", relation, new_row, None)

    def _update(self, body: memoryview) -> None:
        relation, offset = self._relation_of(body)
        old_row, old_is_key = None, False
        if chr(body[offset]) in "KO":
            old_is_key = chr(body[offset]) == "K"
            old_row, offset = _tuple(body, offset + 1, relation)
            old_row = _key_only(old_row, relation) if old_is_key else old_row
        new_row, _ = _tuple(body, offset + 1, relation)
        if old_row is not None:
            # An unchanged TOASTed value is not sent again: the old row has it when the identity is full.
            new_row = {k: old_row.get(k) if v is UNCHANGED else v for k, v in new_row.items()}
        self._add("UPDATE", relation, new_row, old_row, old_is_key)

    def _delete(self, body: memoryview) -> None:
        relation, offset = self._relation_of(body)
        old_is_key = chr(body[offset]) == "K"
        old_row, _ = _tuple(body, offset + 1, relation)
        old_row = _key_only(old_row, relation) if old_is_key else old_row
        self._add("DELETE", relation, old_row, old_row, old_is_key)

    def _relation_of(self, body: memoryview) -> tuple[Relation, int]:
        (oid,) = struct.unpack_from("!I", body)
        return self.relations[oid], 4

    def _add(
        self, op: str, relation: Relation, new_row: dict, old_row: dict | None, key: bool = False
    ) -> None:
        self._pending.append(
            RowChange(
                op=op,
                schema=relation.schema,
                table=relation.table,
                new_row=_drop_unchanged(new_row),
                old_row=None if old_row is None else _drop_unchanged(old_row),
                commit_lsn="",
                position=len(self._pending),
                committed_at=self._commit_at,
                old_is_key=key,
                types=dict(relation.columns),
            )
        )


UNCHANGED = object()  # a TOASTed value the change did not touch (pgoutput's 'u')


def _string(body: memoryview, offset: int) -> tuple[str, int]:
    end = bytes(body[offset:]).index(b"\0") + offset
    return bytes(body[offset:end]).decode(), end + 1


def _tuple(body: memoryview, offset: int, relation: Relation) -> tuple[dict, int]:
    (count,) = struct.unpack_from("!H", body, offset)
    offset += 2
    row: dict = {}
    for name, _type in relation.columns[:count]:
        kind = chr(body[offset])
        offset += 1
        if kind == "n":
            row[name] = None
        elif kind == "u":
            row[name] = UNCHANGED
        else:  # 't' (text); 'b' needs the binary option, which we never ask for
            (length,) = struct.unpack_from("!I", body, offset)
            offset += 4
            row[name] = bytes(body[offset : offset + length]).decode()
            offset += length
    return row, offset


def _key_only(row: dict, relation: Relation) -> dict:
    """A 'K' tuple sends every column, the ones outside the key as nulls: keep the key."""
    return {k: v for k, v in row.items() if k in relation.key}


def _drop_unchanged(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not UNCHANGED}


def read_changes(conn: psycopg.Connection, datasource_id: int, limit: int) -> ChangeBatch:
    """The committed changes the slot holds, oldest first, without consuming them (about `limit` rows:
    decoding stops after the transaction in which the limit is reached).

    `advance_to` is the end of the last whole transaction read, never a WAL position the read merely
    reached: a commit record that straddles that position could be skipped by an advance to it. Idle
    databases get their transactions to advance to from `heartbeat`.
    """
    with listener_transaction(conn):
        rows = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, "
            "'proto_version', '1', 'publication_names', %s, 'messages', 'true')",
            (slot_name(conn, datasource_id), limit, publication_name(datasource_id)),
        ).fetchall()
    parser = PgOutputParser()
    for (data,) in rows:
        parser.feed(bytes(data))
    advance_to = None if parser.last_commit_end is None else int_to_lsn(parser.last_commit_end)
    return ChangeBatch(parser.changes, advance_to, parser.oldest_commit_at)


def heartbeat(conn: psycopg.Connection) -> None:
    """A transaction holding only a logical message: on a database whose watched tables are quiet while
    the server's WAL moves on (other databases, vacuum), it is what the slot can be advanced past."""
    with listener_transaction(conn):
        conn.execute("SELECT pg_logical_emit_message(true, 'rowbell-heartbeat', '')")


def typed_rows(conn: psycopg.Connection, changes: list[RowChange]) -> None:
    """Replace each change's text values by the JSON `to_jsonb(row)` gives, cast by the database with the
    table's own column types (numbers, booleans, arrays, timestamps as the trigger capture writes them).

    A table dropped or altered since the change keeps the values as text rather than losing the event.
    """
    by_table: dict[tuple[str, str], list[tuple[RowChange, str]]] = {}
    for change in changes:
        for attribute in ("new_row", "old_row"):
            if getattr(change, attribute) is not None:
                by_table.setdefault((change.schema, change.table), []).append((change, attribute))
    for (schema, table), targets in by_table.items():
        documents = [
            json.dumps(_json_ready(getattr(change, attribute), change.types)) for change, attribute in targets
        ]
        query = sql.SQL(
            "SELECT to_jsonb(jsonb_populate_record(NULL::{}, d::jsonb)) FROM unnest(%s::text[]) WITH ORDINALITY u(d, n) ORDER BY n"
        ).format(sql.Identifier(schema, table))
        try:
            with listener_transaction(conn):
                typed = [row[0] for row in conn.execute(query, (documents,)).fetchall()]
        except psycopg.Error:
            continue
        for (change, attribute), row in zip(targets, typed, strict=True):
            present = getattr(change, attribute)
            # Keep only the columns the change carried (a key-only old row stays key-only).
            setattr(change, attribute, {k: v for k, v in row.items() if k in present})


def _json_ready(row: dict, types: dict[str, int]) -> dict:
    out = {}
    for name, value in row.items():
        if value is not None and types.get(name) in JSON_TYPES:
            with contextlib.suppress(ValueError):  # malformed text stays text, as it came
                value = json.loads(value)
        out[name] = value
    return out


def advance(conn: psycopg.Connection, datasource_id: int, lsn: str) -> None:
    """Move the slot past everything before `lsn` (never backwards)."""
    with listener_transaction(conn):
        conn.execute(
            "SELECT pg_replication_slot_advance(%s, %s::pg_lsn) FROM pg_replication_slots "
            "WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn",
            (slot_name(conn, datasource_id), lsn, slot_name(conn, datasource_id), lsn),
        )


@dataclass(frozen=True)
class SlotHealth:
    exists: bool
    lag_bytes: int = 0  # WAL written since the slot's confirmed position: what is still to be read
    retained_bytes: int = 0  # WAL the server keeps for the slot (what fills the disk)
    wal_status: str = ""  # reserved, extended, unreserved, lost
    safe_wal_size: int | None = None  # bytes left before max_slot_wal_keep_size invalidates the slot


def slot_health(conn: psycopg.Connection, datasource_id: int) -> SlotHealth:
    with listener_transaction(conn):
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - confirmed_flush_lsn, pg_current_wal_lsn() - restart_lsn, "
            "wal_status, safe_wal_size FROM pg_replication_slots WHERE slot_name = %s",
            (slot_name(conn, datasource_id),),
        ).fetchone()
    if row is None:
        return SlotHealth(exists=False)
    lag, retained, status, safe = row
    return SlotHealth(
        True, int(lag or 0), int(retained or 0), status or "", None if safe is None else int(safe)
    )


def ensure_capture(conn: psycopg.Connection, datasource_id: int, tables: list[tuple[str, str]]) -> None:
    """The source's publication lists exactly `tables`, and its slot exists (created once: a slot starts
    at the moment it is created, so changes before it are the trigger capture's to deliver)."""
    publication = sql.Identifier(publication_name(datasource_id))
    table_list = sql.SQL(", ").join(sql.Identifier(schema, table) for schema, table in tables)
    with conn.transaction():
        exists = conn.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", (publication_name(datasource_id),)
        ).fetchone()
        if exists and tables:
            conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(publication, table_list))
        elif tables:
            conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(publication, table_list))
        elif not exists:
            conn.execute(sql.SQL("CREATE PUBLICATION {}").format(publication))
    has_slot = conn.execute(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot_name(conn, datasource_id),)
    ).fetchone()
    if not has_slot:
        # Outside a transaction block that wrote anything: slot creation waits for running transactions.
        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, %s)", (slot_name(conn, datasource_id), PLUGIN)
        )
        if not conn.autocommit:
            conn.commit()


def drop_capture(conn: psycopg.Connection, datasource_id: int) -> None:
    """Remove the slot (freeing the WAL it held) and the publication. Idempotent."""
    conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
        (slot_name(conn, datasource_id),),
    )
    conn.execute(
        sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication_name(datasource_id)))
    )
    if not conn.autocommit:
        conn.commit()


def install_capture(datasource, tables: list[tuple[str, str]]) -> None:
    """`ensure_capture` on the data source's database, failing with what to fix."""
    try:
        with connect_datasource(datasource, autocommit=True, application_name="rowbell-install") as conn:
            ensure_capture(conn, datasource.pk, tables)
    except psycopg.Error as exc:
        raise DataSourceUnavailable(capture_problem(exc, datasource.connection_url)) from exc


def remove_capture(datasource) -> None:
    try:
        with connect_datasource(datasource, autocommit=True, application_name="rowbell-install") as conn:
            drop_capture(conn, datasource.pk)
    except psycopg.Error as exc:
        raise DataSourceUnavailable(capture_problem(exc, datasource.connection_url)) from exc


def capture_problem(exc: psycopg.Error, url: str) -> str:
    """What stops logical decoding on this database, in words that say what to change."""
    text = str(exc)
    if "wal_level" in text:
        return (
            "Logical decoding needs wal_level = logical on the database server (ALTER SYSTEM SET wal_level = "
            "logical; then restart it). Until then, use row triggers."
        )
    if "replication" in text and ("permission" in text or "must be" in text):
        return (
            "Rowbell's role may not use replication slots: a superuser runs ALTER ROLE <role> REPLICATION "
            "(see the setup SQL)."
        )
    if "must be owner" in text or "permission denied" in text:
        return (
            "Rowbell's role cannot add these tables to its publication (only a table's owner can): the "
            f"owner runs the setup SQL's publication statement. The database said: {text.strip()}"
        )
    if "max_replication_slots" in text or "all replication slots are in use" in text:
        return "The server has no free replication slot: raise max_replication_slots, then try again."
    return f"Logical decoding failed: {describe_error(exc, url)}"
