"""Listener processes share the data sources: each source is leased to one listener at a time.

A listener renews its leases at every refresh (runs/listener.py `Listener.refresh_sources`), gives back what
exceeds its fair share (the sources divided by the live listeners, rounded up), and takes free or expired
ones up to that share. A listener that dies stops renewing; LISTENER_LEASE_SECONDS later its sources are
free and the others take them over. Two listeners reading one source for a moment (a lease taken over from
a listener that was only frozen) is safe: claims use SKIP LOCKED and runs are unique per event key.

Live listeners are those with a fresh `ProcessHeartbeat` of kind "listener" (the listener's identity is
its name: each `hold` beats it, as does the `listen` process's heartbeat thread), so a new listener that
holds nothing yet is counted and the others make room for it.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import DataSource
from runs.engine.liveness import Heartbeat
from runs.models import ProcessHeartbeat


def new_identity() -> str:
    return f"listener-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"[:100]


class Leases:
    def __init__(self, identity: str):
        self.identity = identity
        self.presence = Heartbeat("listener", name=identity)

    def hold(self, sources: list[int]) -> list[int]:
        """Renew, rebalance and claim; returns the ids of the sources this listener reads now."""
        now = timezone.now()
        until = now + timedelta(seconds=settings.LISTENER_LEASE_SECONDS)
        self.presence.beat()
        with transaction.atomic():
            mine_qs = DataSource.objects.filter(pk__in=sources, listener_owner=self.identity)
            mine_qs.update(listener_lease_until=until)
            share = math.ceil(len(sources) / max(1, len(self._live(now))))
            mine = sorted(mine_qs.values_list("pk", flat=True))
            if len(mine) > share:
                self._give_back(mine[share:])
                mine = mine[:share]
            wanted = share - len(mine)
            if wanted > 0:
                mine += self._take(sources, wanted, now, until)
        return sorted(mine)

    def release(self) -> None:
        """Give every lease back at once (a clean stop), so another listener need not wait for expiry."""
        self._give_back(None)
        ProcessHeartbeat.objects.filter(name=self.identity).update(stopped_at=timezone.now())

    def _live(self, now) -> set[str]:
        ttl = timedelta(seconds=settings.LISTENER_LEASE_SECONDS)
        holders = DataSource.objects.filter(listener_lease_until__gt=now).exclude(listener_owner="")
        beating = ProcessHeartbeat.objects.filter(
            kind="listener", stopped_at__isnull=True, beat_at__gt=now - ttl
        )
        return (
            set(holders.values_list("listener_owner", flat=True))
            | set(beating.values_list("name", flat=True))
            | {self.identity}
        )

    def _take(self, sources: list[int], wanted: int, now, until) -> list[int]:
        free = Q(listener_owner="") | Q(listener_lease_until__isnull=True) | Q(listener_lease_until__lte=now)
        candidates = list(
            DataSource.objects.select_for_update(skip_locked=True)
            .filter(free, pk__in=sources)
            .order_by("pk")
            .values_list("pk", flat=True)[:wanted]
        )
        DataSource.objects.filter(pk__in=candidates).update(
            listener_owner=self.identity, listener_lease_until=until
        )
        return candidates

    def _give_back(self, ids: list[int] | None) -> None:
        mine = DataSource.objects.filter(listener_owner=self.identity)
        if ids is not None:
            mine = mine.filter(pk__in=ids)
        mine.update(listener_owner="", listener_lease_until=None)
