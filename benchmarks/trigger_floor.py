"""What any row trigger costs the customer's writes: the floor under Rowbell's trigger.

    .venv/bin/python benchmarks/trigger_floor.py [--seconds 3] [--rounds 5]

trigger_latency.py reports what Rowbell's trigger costs 8 concurrent writers inserting into a minimal
table. This script puts that figure next to cheaper triggers that Rowbell could not ship, so a target
for it can be set with the floor in view:

- `empty trigger`: an AFTER ROW trigger whose function does nothing (the price of having a trigger);
- `constant row, unlogged`: it inserts a constant row into an unlogged table with no index, no identity
  and no jsonb (the cheapest second INSERT a trigger can run; it loses events on a crash);
- `Rowbell trigger`: the one `install_trigger` installs (the row as jsonb into `rowbell.event_log`).

Each is measured with pgbench (8 clients, one single-row INSERT per transaction) on two tables: the
`minimal` one trigger_latency.py uses (a bigserial key and three columns) and a `typical` one (a foreign
key to customers and two secondary indexes). Variants are interleaved --rounds times; medians printed.
Creates and drops its own database on --pg-admin-url's server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.pgbench import admin, pgbench
from benchmarks.smoke import parse_with_smoke

TABLES = {
    "minimal": (
        "CREATE TABLE orders (id bigserial PRIMARY KEY, email text NOT NULL, amount numeric(10,2), "
        "created_at timestamptz NOT NULL DEFAULT now())",
    ),
    "typical": (
        "CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE)",
        "INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 1000) g",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, "
        "email text NOT NULL, amount numeric(10,2), status text NOT NULL DEFAULT 'new', "
        "created_at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX ON orders (customer_id)",
        "CREATE INDEX ON orders (created_at)",
    ),
}
INSERTS = {
    "minimal": "INSERT INTO orders (email, amount) VALUES ('someone@example.com', 12.50);",
    "typical": "\\set c random(1, 1000)\n"
    "INSERT INTO orders (customer_id, email, amount) VALUES (:c, 'someone@example.com', 12.50);",
}
FLOOR_FUNCTIONS = (
    "CREATE SCHEMA IF NOT EXISTS bench",
    "CREATE UNLOGGED TABLE bench.sink (workflow_id bigint, op text)",
    "CREATE FUNCTION bench.empty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    "CREATE FUNCTION bench.constant_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO bench.sink VALUES (1, 'INSERT'); RETURN NULL; END $$",
)
VARIANTS = ("no trigger", "empty trigger", "constant row, unlogged", "Rowbell trigger")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=3, help="length of each pgbench run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tables", default="minimal,typical", help="any of minimal,typical")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    return parse_with_smoke(parser, seconds=1, rounds=1, tables="minimal")


def set_trigger(url: str, variant: str) -> None:
    """Leave exactly one trigger (or none) on orders: the variant's."""
    from integrations.datasources import TriggerSpec, install_trigger, remove_trigger

    source = SimpleNamespace(connection_url=url)
    remove_trigger(source, 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER IF EXISTS bench_floor ON orders")
        function = {"empty trigger": "bench.empty", "constant row, unlogged": "bench.constant_row"}.get(
            variant
        )
        if function:
            conn.execute(
                f"CREATE TRIGGER bench_floor AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION {function}()"
            )
    if variant == "Rowbell trigger":
        install_trigger(source, 1, TriggerSpec(schema="public", table="orders"))


def measure(args: argparse.Namespace, table: str) -> dict[str, float]:
    name = f"rowbell_bench_floor_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(args.pg_admin_url)._replace(path=f"/{name}"))
    admin(args.pg_admin_url, f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in TABLES[table] + FLOOR_FUNCTIONS:
                conn.execute(statement)
        results: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for variant in VARIANTS * args.rounds:
            set_trigger(url, variant)
            admin(url, "CHECKPOINT")  # so no variant pays for another's dirty pages
            results[variant].append(pgbench(url, INSERTS[table], args.seconds))
        return {variant: statistics.median(values) for variant, values in results.items()}
    finally:
        admin(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    args = parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATA_SOURCE_ALLOW_ROWBELL_SERVER", "true")  # customer databases share the server
    import django

    django.setup()  # install_trigger reads Rowbell's connection settings
    print(
        f"trigger_floor: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, 8 writers, medians of {args.rounds}"
    )
    for table in args.tables.split(","):
        tps = measure(args, table)
        for variant in VARIANTS:
            overhead = (1 - tps[variant] / tps["no trigger"]) * 100
            print(f"{table:8s} {variant:24s} {tps[variant]:8.0f} inserts/s  overhead {overhead:5.1f} %")


if __name__ == "__main__":
    main()
