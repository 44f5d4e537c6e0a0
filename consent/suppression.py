"""The suppression list: addresses a tenant never sends to, on any topic, whatever a step says.

`suppress_address` is the one way an address enters the list, so every source behaves the same:
- the email step, when a mail server refuses a recipient at RCPT with a 5xx (its `on_refused` hook,
  consent/email_step.py);
- delivery events from email providers (hard bounces and spam complaints): the tracking-webhook
  handler calls it with `reason=Suppression.Reason.HARD_BOUNCE` or `COMPLAINT`, `source=EVENT` and the
  Delivery the event was matched to;
- admins (pages, API) and CSV imports (`import_csv`, in bulk).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from consent.models import ADDRESS_MAX, Suppression, normalize_address

IMPORT_BATCH = 2000  # rows per bulk INSERT
IMPORT_MAX_ROWS = 200_000


def suppress_address(
    tenant,
    address: str,
    reason: str,
    delivery=None,
    source: str = Suppression.Source.EVENT,
    detail: str = "",
    channel: str = "email",
) -> Suppression | None:
    """Put `address` on `tenant`'s suppression list; from then on no step sends to it, on any topic.

    - `tenant`: a Tenant or its id. `address` is normalised (stripped, lower-cased); a blank one is ignored
      (returns None).
    - `reason`: a `Suppression.Reason` (hard_bounce, complaint, rejected, manual).
    - `delivery`: the Delivery (or its id) of the message that caused it: the bounced or complained-about
      message, or the one the server refused. Kept so the suppression list links to it.
    - `source`: a `Suppression.Source` (smtp, event, admin, import, api).
    - `detail`: the provider's or server's own words (e.g. "550 5.1.1 user unknown"), or an admin's note.
    - `channel`: whose addresses the list holds (an email address for "email"; each channel has its own).

    Idempotent and safe under concurrency (INSERT ... ON CONFLICT DO NOTHING): an address already on the
    list keeps its first entry (its reason and the message that caused it), and that entry is returned.
    """
    address = normalize_address(address)[:ADDRESS_MAX]
    if not address:
        return None
    tenant_id = getattr(tenant, "pk", tenant)
    delivery_id = getattr(delivery, "pk", delivery)
    Suppression.objects.bulk_create(
        [
            Suppression(
                tenant_id=tenant_id,
                channel=channel,
                address=address,
                reason=reason,
                source=source,
                detail=detail[:2000],
                delivery_id=delivery_id,
            )
        ],
        ignore_conflicts=True,
    )
    return Suppression.objects.filter(tenant_id=tenant_id, channel=channel, address=address).first()


@dataclass
class ImportReport:
    added: int = 0
    already: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)

    @property
    def summary(self) -> str:
        parts = [f"{self.added:,} added", f"{self.already:,} already on the list"]
        if self.errors:
            parts.append(f"{len(self.errors):,} lines refused")
        return ", ".join(parts) + "."


CSV_COLUMNS = ("address", "reason", "detail", "created_at")


def import_csv(tenant, text: str) -> ImportReport:
    """Add every valid row of a CSV (columns: address[, reason[, detail]]; a header row is optional).

    Bad rows are reported by line number and the good ones are still added (nothing is lost: the
    admin fixes the reported lines and imports them again; addresses already on the list are counted,
    not changed). Rows go in with bulk INSERTs of IMPORT_BATCH rows.
    """
    report = ImportReport()
    rows = _valid_rows(text, report)
    batch: list[Suppression] = []
    for address, reason, detail in rows:
        batch.append(
            Suppression(
                tenant=tenant,
                address=address,
                reason=reason,
                source=Suppression.Source.IMPORT,
                detail=detail,
            )
        )
        if len(batch) >= IMPORT_BATCH:
            _insert(batch, report)
            batch = []
    if batch:
        _insert(batch, report)
    return report


def _insert(batch: list[Suppression], report: ImportReport) -> None:
    """One bulk INSERT; addresses already on the list keep their entry and are counted apart."""
    existing = Suppression.objects.filter(
        tenant_id=batch[0].tenant_id, channel=batch[0].channel, address__in=[s.address for s in batch]
    ).count()
    Suppression.objects.bulk_create(batch, ignore_conflicts=True)
    report.added += len(batch) - existing
    report.already += existing


def _valid_rows(text: str, report: ImportReport) -> Iterator[tuple[str, str, str]]:
    seen: set[str] = set()
    reasons = {value for value, _ in Suppression.Reason.choices}
    labels = {label.lower(): value for value, label in Suppression.Reason.choices}
    reader = csv.reader(io.StringIO(text))
    for number, row in enumerate(reader, start=1):
        if number > IMPORT_MAX_ROWS:
            report.errors.append((number, f"Stopped: a file holds at most {IMPORT_MAX_ROWS:,} rows."))
            return
        cells = [cell.strip() for cell in row]
        if not cells or not any(cells):
            continue
        if number == 1 and cells[0].lower() in ("address", "email", "email address"):
            continue
        address = normalize_address(cells[0])
        problem = _address_problem(address)
        raw_reason = cells[1].lower() if len(cells) > 1 and cells[1] else "manual"
        reason = raw_reason if raw_reason in reasons else labels.get(raw_reason)
        if problem is None and reason is None:
            problem = f"unknown reason “{cells[1]}” (use one of: {', '.join(sorted(reasons))})"
        if problem is not None or reason is None:  # reason is None only with a problem (set just above)
            report.errors.append((number, problem or "no reason"))
            continue
        if address in seen:
            report.already += 1
            continue
        seen.add(address)
        yield address, reason, (cells[2] if len(cells) > 2 else "")[:2000]


def _address_problem(address: str) -> str | None:
    if not address:
        return "no address"
    if len(address) > ADDRESS_MAX:
        return f"the address is longer than {ADDRESS_MAX} characters"
    try:
        validate_email(address)
    except ValidationError:
        return f"“{address[:100]}” is not an email address"
    return None


def export_rows(suppressions: Iterable[Suppression]) -> Iterator[list[str]]:
    yield list(CSV_COLUMNS)
    for s in suppressions:
        yield [s.address, s.reason, s.detail, s.created_at.isoformat()]
