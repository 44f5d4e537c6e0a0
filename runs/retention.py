"""Retention: finished runs older than the tenant's retention (`limits_for(tenant).activity_retention_days`:
the operator's value in the admin, else ACTIVITY_RETENTION_DAYS) are deleted with their executions and
messages, so a busy tenant's history does not grow without end. 0 (the default) keeps everything.

A run is kept, whatever its age, while any of its messages still needs a person: held in the sandbox
(waiting to be released), or sending/uncertain (an operator decides whether it went out). Deleting a run
also forgets its event key, so a webhook re-sent with the same Idempotency-Key after the retention window
starts a new run; keep the window longer than any sender retries.

Deletes go in slices of whole runs (with their searchable values, runs/search_values.py), each one transaction of a few DELETE statements (Django's cascade
would load every execution of a 100,000-item run into memory first), for at most `budget` seconds a call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from consent.models import Suppression
from integrations import clock
from runs.models import Delivery, DeliveryEvent, Run, RunSearchValue, StepExecution
from tenants.limits import overrides

KEEP_WHILE = (Delivery.Status.HELD, Delivery.Status.SENDING, Delivery.Status.UNCERTAIN)

# Oldest first; SKIP LOCKED so that two prune jobs (or a replay that locks a run) never wait on each other.
# {tenants} is one tenant (`r.tenant_id = %(tenant)s`: a range of run_tenant_finished_at, so a tenant with a
# short retention never reads the old runs of a tenant that keeps everything) or every tenant but some
# (a range of run_finished_at). Each slice starts after the last run the previous one took (keyset): the
# index entries of the runs just deleted stay until no transaction can see them (and vacuum runs), and
# starting from the oldest again would walk all of them, slice after slice (measured: 2 s a slice after
# 50,000 runs, while the activity pages were being read). `d.tenant_id = r.tenant_id` lets the few messages
# that keep a run be read once from delivery_tenant_status: without it PostgreSQL chose a sequential scan
# of every message for each slice (2.9 s a slice at 3.3M messages; 13 ms with it).
EXPIRED_RUNS_OF = f"""
SELECT r.id, r.finished_at FROM {Run._meta.db_table} r
WHERE r.status = ANY(%(finished)s) AND r.finished_at < %(cutoff)s AND {{tenants}}
  AND r.finished_at >= %(after_at)s AND (r.finished_at, r.id) > (%(after_at)s, %(after_id)s)
  AND NOT EXISTS (SELECT 1 FROM {Delivery._meta.db_table} d
                  WHERE d.run_id = r.id AND d.tenant_id = r.tenant_id AND d.status = ANY(%(keep)s))
ORDER BY r.finished_at, r.id
LIMIT %(limit)s
FOR UPDATE OF r SKIP LOCKED
"""
START = {"after_at": datetime(1, 1, 1, tzinfo=UTC), "after_id": 0}
ONE_TENANT = "r.tenant_id = %(tenant)s"
ALL_BUT = "NOT (r.tenant_id = ANY(%(skip)s))"


@dataclass(frozen=True)
class Tenants:
    """Which tenants a prune covers: `only` these (None: every tenant) except those in `skip`."""

    only: tuple[int, ...] | None = None
    skip: tuple[int, ...] = ()


EVERY_TENANT = Tenants()


@dataclass(frozen=True)
class RetentionGroup:
    cutoff: datetime
    tenants: Tenants


def retention_plan(now: datetime | None = None) -> list[RetentionGroup]:
    """One group per retention in use: the tenants an operator gave their own days (grouped by days),
    and everyone else under ACTIVITY_RETENTION_DAYS. Empty when no tenant's retention is on."""
    own = overrides("activity_retention_days")
    by_days: dict[int, list[int]] = {}
    for tenant_id, days in own.items():
        by_days.setdefault(int(days), []).append(tenant_id)
    plan = []
    for days, tenant_ids in sorted(by_days.items()):
        cutoff = retention_cutoff(now, days)
        if cutoff is not None:
            plan.append(RetentionGroup(cutoff, Tenants(only=tuple(sorted(tenant_ids)))))
    default_cutoff = retention_cutoff(now)
    if default_cutoff is not None:
        plan.append(RetentionGroup(default_cutoff, Tenants(skip=tuple(sorted(own)))))
    return plan


@dataclass
class PruneReport:
    runs: int = 0
    executions: int = 0
    deliveries: int = 0
    done: bool = True  # False when the budget ran out with expired runs left (the next call goes on)

    def as_dict(self) -> dict:
        return {**self.__dict__}


def retention_cutoff(now: datetime | None = None, days: int | None = None) -> datetime | None:
    """Runs that finished before this are expired; None when retention is off."""
    days = settings.ACTIVITY_RETENTION_DAYS if days is None else days
    if days <= 0:
        return None
    return (now or clock.now()) - timedelta(days=days)


def prune_runs(
    cutoff: datetime,
    slice_size: int = 500,
    budget: float = 30.0,
    tenants: Tenants = EVERY_TENANT,
    report: PruneReport | None = None,
) -> PruneReport:
    """Delete expired runs, slice by slice, until none is left or `budget` seconds have passed."""
    report = report or PruneReport()
    deadline = time.monotonic() + budget
    for sql, params in _queries(cutoff, tenants):
        after = START
        while True:
            deleted, after = _prune_slice(sql, {**params, **after, "limit": slice_size}, report)
            if deleted < slice_size:
                break
            if time.monotonic() >= deadline:
                report.done = False
                return report
    return report


def count_expired(cutoff: datetime, tenants: Tenants = EVERY_TENANT) -> int:
    total = 0
    with connection.cursor() as cursor:
        for sql, params in _queries(cutoff, tenants):
            counted = sql.replace("FOR UPDATE OF r SKIP LOCKED", "")
            query_params: dict[str, Any] = {**params, **START, "limit": None}
            cursor.execute(f"SELECT count(*) FROM ({counted}) expired", query_params)
            total += cursor.fetchone()[0]
    return total


def _queries(cutoff: datetime, tenants: Tenants) -> list[tuple[str, dict]]:
    """The expired-runs query and its parameters, once per named tenant or once for every other one."""
    common = {"finished": list(Run.FINISHED), "cutoff": cutoff, "keep": list(KEEP_WHILE)}
    if tenants.only is not None:
        one = EXPIRED_RUNS_OF.format(tenants=ONE_TENANT)
        return [(one, {**common, "tenant": tenant_id}) for tenant_id in tenants.only]
    return [(EXPIRED_RUNS_OF.format(tenants=ALL_BUT), {**common, "skip": list(tenants.skip)})]


def _prune_slice(sql: str, params: dict, report: PruneReport) -> tuple[int, dict]:
    """Delete one slice; return how many runs it took and where the next slice starts."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        if not rows:
            return 0, params
        run_ids = [run_id for run_id, _finished_at in rows]
        last_id, last_at = rows[-1]
        # Children first: the foreign keys are checked at commit, but this keeps each DELETE on its index.
        cursor.execute(
            f"DELETE FROM {DeliveryEvent._meta.db_table} WHERE delivery_id IN "
            f"(SELECT id FROM {Delivery._meta.db_table} WHERE run_id = ANY(%s))",
            [run_ids],
        )
        # A suppression outlives the message that caused it (a bounce, a complaint, a refusal): it only
        # forgets which message that was (the raw DELETE below does not run Django's SET_NULL).
        cursor.execute(
            f"UPDATE {Suppression._meta.db_table} SET delivery_id = NULL WHERE delivery_id IN "
            f"(SELECT id FROM {Delivery._meta.db_table} WHERE run_id = ANY(%s))",
            [run_ids],
        )
        cursor.execute(f"DELETE FROM {RunSearchValue._meta.db_table} WHERE run_id = ANY(%s)", [run_ids])
        for model, counter in ((Delivery, "deliveries"), (StepExecution, "executions")):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE run_id = ANY(%s)", [run_ids])
            setattr(report, counter, getattr(report, counter) + cursor.rowcount)
        cursor.execute(f"DELETE FROM {Run._meta.db_table} WHERE id = ANY(%s)", [run_ids])
        report.runs += cursor.rowcount
    return len(run_ids), {"after_at": last_at, "after_id": last_id}
