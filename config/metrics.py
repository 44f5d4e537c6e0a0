"""`/metrics`: what an SRE expects from a job system, in Prometheus's text format (prometheus-client).

Gauges are computed at scrape time from PostgreSQL and Redis by one custom collector (`RowbellCollector`),
so every web process answers the same numbers and nothing has to be kept in memory between scrapes. The
counters that many processes add to (send latency, sweeper reclaims, listener lag) live in Redis
(runs/engine/metrics.py). The PostgreSQL queries run under a statement timeout
(METRICS_QUERY_TIMEOUT_MS): a slow count drops that metric from the scrape (`rowbell_scrape_error`)
rather than hanging it.

Access: a request with `Authorization: Bearer <METRICS_TOKEN>`, or from an address in
METRICS_ALLOWED_NETWORKS (default: loopback only). Anything else is a 404, like a page that is not there.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from runs.engine import metrics as engine_metrics

logger = logging.getLogger(__name__)

RUNS_SQL = "SELECT status, count(*) FROM runs_run GROUP BY status"
EXECUTIONS_SQL = """
SELECT s.kind, CASE WHEN e.status = 'pending' AND e.attempts > 0 AND e.error <> '' THEN 'retrying'
    ELSE e.status END, count(*)
FROM runs_stepexecution e JOIN workflows_step s ON s.id = e.step_id GROUP BY 1, 2
"""
DELIVERIES_SQL = "SELECT channel, status, count(*) FROM runs_delivery GROUP BY channel, status"
# Uses the partial index on due executions: cheap however big the history.
OLDEST_DUE_SQL = """
SELECT COALESCE(extract(epoch FROM now() - min(next_attempt_at)), 0) FROM runs_stepexecution
WHERE status = 'pending' AND next_attempt_at <= now()
"""
HEARTBEATS_SQL = """
SELECT kind, name, host, extract(epoch FROM now() - beat_at) FROM runs_processheartbeat WHERE stopped_at IS NULL
"""
SLOTS_SQL = """
SELECT id, slot_lag_bytes, slot_retained_bytes FROM integrations_datasource
WHERE slot_retained_bytes IS NOT NULL AND listener_status <> 'idle'
"""
LISTENER_SEEN_SQL = """
SELECT id, name, extract(epoch FROM now() - listener_seen_at) FROM integrations_datasource
WHERE listener_seen_at IS NOT NULL AND listener_status <> 'idle'
"""


class RowbellCollector:
    """Every Rowbell metric, read when Prometheus scrapes."""

    def collect(self) -> Iterator:
        errors = GaugeMetricFamily(
            "rowbell_scrape_error", "1 when a part of this scrape failed (see the web log)", labels=["part"]
        )
        for part, produce in self.parts():
            try:
                yield from produce()
                errors.add_metric([part], 0)
            except Exception:
                logger.warning("Metrics: %s failed", part, exc_info=True)
                errors.add_metric([part], 1)
                if connection.connection is not None and connection.needs_rollback:
                    connection.close()
        yield errors

    def parts(self) -> list[tuple[str, Callable[[], Iterator]]]:
        return [
            ("database", self.database),
            ("queues", self.queues),
            ("redis_counters", self.redis_counters),
        ]

    def database(self) -> Iterator:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = %s", [int(settings.METRICS_QUERY_TIMEOUT_MS)])
            runs = GaugeMetricFamily("rowbell_runs", "Runs by status", labels=["status"])
            for status, n in fetch(cur, RUNS_SQL):
                runs.add_metric([status], n)
            executions = GaugeMetricFamily(
                "rowbell_executions", "Step executions by step kind and status", labels=["kind", "status"]
            )
            for kind, status, n in fetch(cur, EXECUTIONS_SQL):
                executions.add_metric([kind, status], n)
            deliveries = GaugeMetricFamily(
                "rowbell_deliveries", "Messages by channel and status", labels=["channel", "status"]
            )
            for channel, status, n in fetch(cur, DELIVERIES_SQL):
                deliveries.add_metric([channel, status], n)
            oldest = fetch(cur, OLDEST_DUE_SQL)[0][0]
            heartbeats = fetch(cur, HEARTBEATS_SQL)
            seen = fetch(cur, LISTENER_SEEN_SQL)
            slots = fetch(cur, SLOTS_SQL)
        yield from (runs, executions, deliveries)
        yield GaugeMetricFamily(
            "rowbell_oldest_due_execution_age_seconds",
            "How long the oldest execution that is due has waited to be claimed (0: none)",
            value=float(oldest),
        )
        beat = GaugeMetricFamily(
            "rowbell_process_heartbeat_age_seconds",
            "Seconds since each running Procfile process last reported (runs_processheartbeat)",
            labels=["kind", "name", "host"],
        )
        alive = GaugeMetricFamily(
            "rowbell_processes_alive",
            "Processes whose heartbeat is younger than WORKER_LEASE_SECONDS",
            labels=["kind"],
        )
        counts: dict[str, int] = {}
        for kind, name, host, age in heartbeats:
            beat.add_metric([kind, name, host], float(age))
            counts[kind] = counts.get(kind, 0) + (float(age) <= settings.WORKER_LEASE_SECONDS)
        for kind, n in sorted(counts.items()):
            alive.add_metric([kind], n)
        yield from (beat, alive)
        listener_seen = GaugeMetricFamily(
            "rowbell_listener_seen_age_seconds",
            "Seconds since the listener last polled each data source",
            labels=["datasource"],
        )
        for pk, _name, age in seen:
            listener_seen.add_metric([str(pk)], float(age))
        yield listener_seen
        slot_bytes = GaugeMetricFamily(
            "rowbell_listener_slot_bytes",
            "Logical decoding slots: WAL still to read (lag) and WAL the server keeps for them (retained)",
            labels=["datasource", "measure"],
        )
        for pk, lag, retained in slots:
            slot_bytes.add_metric([str(pk), "lag"], float(lag or 0))
            slot_bytes.add_metric([str(pk), "retained"], float(retained))
        yield slot_bytes

    def queues(self) -> Iterator:
        import django_rq

        depth = GaugeMetricFamily(
            "rowbell_queue_jobs", "RQ jobs per queue and state", labels=["queue", "state"]
        )
        for name in ("default", "low"):
            queue = django_rq.get_queue(name)
            depth.add_metric([name, "queued"], queue.count)
            depth.add_metric([name, "scheduled"], queue.scheduled_job_registry.count)
            depth.add_metric([name, "started"], queue.started_job_registry.count)
            depth.add_metric([name, "failed"], queue.failed_job_registry.count)
        yield depth

    def redis_counters(self) -> Iterator:
        reclaims = CounterMetricFamily(
            "rowbell_sweeper_reclaims",
            "Executions the sweeper returned to pending, by reason (worker_gone, timeout)",
            labels=["reason"],
        )
        for reason, n in sorted(engine_metrics.read_reclaims().items()):
            reclaims.add_metric([reason], n)
        yield reclaims
        latency = HistogramMetricFamily(
            "rowbell_send_latency_seconds",
            "From a message's first command to the provider's answer, per channel",
            labels=["channel"],
        )
        for channel, data in sorted(engine_metrics.read_send_latencies().items()):
            buckets = [(str(bound), n) for bound, n in data["buckets"]] + [("+Inf", data["count"])]
            latency.add_metric([channel], buckets, sum_value=data["sum"])
        yield latency
        lag = GaugeMetricFamily(
            "rowbell_listener_lag_seconds",
            "Age of the oldest row waiting in each data source's event log (0: none)",
            labels=["datasource"],
        )
        for pk, seconds in sorted(engine_metrics.read_listener_lags().items()):
            lag.add_metric([str(pk)], seconds)
        yield lag


def fetch(cur, sql: str) -> list[tuple]:
    cur.execute(sql)
    return cur.fetchall()


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(RowbellCollector())


def allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS
    )


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        raise Http404
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
