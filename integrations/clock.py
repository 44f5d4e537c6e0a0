"""Rowbell's one source of time. Tests travel in time by patching `integrations.clock.now`."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The current time (aware, UTC). Everything in the engine that compares against time calls this."""
    return timezone.now()
