"""Bulk retry and cancel by filter (#29): filters.py says what an operation matches and counts it (the
dry run); operations.py starts one named operation and works through it in batches on RQ."""

from runs.bulk.filters import (
    STATES,
    BadFilter,
    BulkFilter,
    UnknownObject,
    counts_in_words,
    dry_run,
    parse_filter,
)
from runs.bulk.operations import KeyReused, resume_stalled, retry_unless_sent, run_batch, start_operation

__all__ = [
    "STATES",
    "BadFilter",
    "BulkFilter",
    "KeyReused",
    "UnknownObject",
    "counts_in_words",
    "dry_run",
    "parse_filter",
    "resume_stalled",
    "retry_unless_sent",
    "run_batch",
    "start_operation",
]
