"""Probes for load balancers and orchestrators: `/healthz` (the process answers) and `/readyz` (it can
do its work: PostgreSQL answers, Redis answers, and every migration is applied).

Both are public and cheap: no session, no tenant, no template. `/readyz` answers 503 with the failing
check's reason, so a rolling deploy does not send traffic to a web process whose database lags behind
its code.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from runs.engine import enqueue

logger = logging.getLogger(__name__)
_migrated = False  # once every migration is applied, it stays so for this process's code


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def check_database() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return "ok"


def check_redis() -> str:
    enqueue.redis_connection().ping()
    return "ok"


def check_migrations() -> str:
    global _migrated
    if not _migrated:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            return f"{len(pending)} migration(s) not applied, e.g. {pending[0][0]}"
        _migrated = True
    return "ok"


CHECKS = {"database": check_database, "redis": check_redis, "migrations": check_migrations}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:
            logger.warning("Readiness check %s failed: %s", name, exc)
            results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
            if name == "database":
                connection.close()  # a broken connection is replaced on the next request
    ready = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", **results}, status=200 if ready else 503
    )
